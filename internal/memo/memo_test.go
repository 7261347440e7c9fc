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

func TestMap(t *testing.T) {
	t.Parallel()
	m := NewMap[int](2)
	m.Put("a", 1)
	m.Put("b", 2)
	m.Put("a", 3) // replaced in place: still the oldest
	if v, ok := m.Get("a"); !ok || v != 3 {
		t.Fatalf("a = %d, %v; want 3", v, ok)
	}
	m.Forget("b")
	if _, ok := m.Get("b"); ok {
		t.Fatal("b not forgotten")
	}
	m.Put("b", 4) // takes the next slot, which was a's
	m.Put("c", 5) // takes b's old slot, emptied by Forget: nothing to drop
	if _, ok := m.Get("a"); ok {
		t.Fatal("a, the oldest, not forgotten")
	}
	if v, ok := m.Get("b"); !ok || v != 4 {
		t.Fatalf("b = %d, %v; want 4 (a forgotten slot must not drop a newer key)", v, ok)
	}
	if v, ok := m.Get("c"); !ok || v != 5 {
		t.Fatalf("c = %d, %v; want 5", v, ok)
	}
	m.ForgetFunc(func(key string) bool { return key == "c" })
	if _, ok := m.Get("c"); ok {
		t.Fatal("c not forgotten by ForgetFunc")
	}
	if _, ok := m.Get("b"); !ok {
		t.Fatal("ForgetFunc dropped b")
	}
	var zero *Map[int]
	zero.Put("x", 1)
	zero.Forget("x")
	zero.ForgetFunc(func(string) bool { return true })
	if _, ok := zero.Get("x"); ok {
		t.Fatal("nil map remembered")
	}
}

// TestMapGrows: a Map fills up to max keys as they come, then forgets the
// oldest; a key forgotten while it grows frees its place without dropping
// another.
func TestMapGrows(t *testing.T) {
	t.Parallel()
	m := NewMap[int](3)
	m.Put("a", 1)
	m.Forget("a")
	for i, k := range []string{"b", "c", "d"} {
		m.Put(k, i)
	}
	for _, k := range []string{"b", "c", "d"} {
		if _, ok := m.Get(k); !ok {
			t.Fatalf("%s forgotten within capacity", k)
		}
	}
	m.Put("e", 4)
	for k, want := range map[string]bool{"b": false, "c": true, "d": true, "e": true} {
		if _, ok := m.Get(k); ok != want {
			t.Errorf("has %s = %v, want %v", k, ok, want)
		}
	}
	if len(m.vals) != 3 {
		t.Errorf("%d keys held, want 3", len(m.vals))
	}
}
