// Package memo remembers what a process has finished, within a fixed
// bound, so that repeated work is answered without asking anyone again.
package memo

import "sync"

// Set remembers up to a fixed number of keys, forgetting the oldest first.
// It lets a process answer repeated work it has finished without asking
// anyone again. The zero value remembers nothing; use NewSet.
type Set struct {
	mu    sync.Mutex
	max   int
	order []string
	next  int
	keys  map[string]struct{}
}

// NewSet returns a Set of at most max keys.
func NewSet(max int) *Set {
	return &Set{max: max, order: make([]string, max), keys: make(map[string]struct{}, max)}
}

// Add remembers key.
func (s *Set) Add(key string) {
	if s == nil || s.max == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[key]; ok {
		return
	}
	if old := s.order[s.next]; old != "" {
		delete(s.keys, old)
	}
	s.order[s.next] = key
	s.keys[key] = struct{}{}
	s.next = (s.next + 1) % s.max
}

// Has reports whether key is remembered.
func (s *Set) Has(key string) bool {
	if s == nil || s.max == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[key]
	return ok
}
