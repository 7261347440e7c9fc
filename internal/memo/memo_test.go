package memo

import "testing"

func TestSetForgetsOldest(t *testing.T) {
	t.Parallel()
	s := NewSet(2)
	s.Add("a")
	s.Add("b")
	s.Add("a") // already there: no change
	if !s.Has("a") || !s.Has("b") {
		t.Fatal("lost a key within capacity")
	}
	s.Add("c")
	if s.Has("a") || !s.Has("b") || !s.Has("c") {
		t.Fatalf("want a forgotten, b and c kept")
	}
	var zero *Set
	zero.Add("x")
	if zero.Has("x") {
		t.Fatal("nil set remembered")
	}
}
