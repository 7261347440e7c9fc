// Package keylock serialises work on the same key inside one process, so
// concurrent copies of one event wait for the first instead of racing it.
package keylock

import "sync"

// Map is a set of mutexes created on demand, one per key, and dropped when
// nobody holds or waits for them. The zero value is ready to use.
type Map struct {
	mu    sync.Mutex
	locks map[string]*entry
}

type entry struct {
	sync.Mutex
	refs int
}

// Lock blocks until key is free and returns the function that frees it.
func (m *Map) Lock(key string) (unlock func()) {
	m.mu.Lock()
	if m.locks == nil {
		m.locks = make(map[string]*entry)
	}
	e := m.locks[key]
	if e == nil {
		e = &entry{}
		m.locks[key] = e
	}
	e.refs++
	m.mu.Unlock()

	e.Lock()
	return func() {
		e.Unlock()
		m.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(m.locks, key)
		}
		m.mu.Unlock()
	}
}

// Len is the number of keys currently held or waited for.
func (m *Map) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.locks)
}

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
