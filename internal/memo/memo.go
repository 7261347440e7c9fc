// Package memo remembers what a process has finished or learnt, within a
// fixed bound, so that repeated work is answered without asking anyone
// again.
package memo

import "sync"

// Map remembers up to a fixed number of values by key, forgetting the
// oldest first. The zero value remembers nothing; use NewMap.
type Map[V any] struct {
	mu    sync.Mutex
	max   int
	order []string // keys by slot; once max long, the oldest at next
	next  int
	vals  map[string]entry[V]
}

// entry is a value and the slot of its key in the order.
type entry[V any] struct {
	v    V
	slot int
}

// NewMap returns a Map of at most max keys. It grows as keys come, so a
// process that remembers little allocates little (and starts sooner).
func NewMap[V any](max int) *Map[V] {
	return &Map[V]{max: max, vals: map[string]entry[V]{}}
}

// Put remembers v for key, replacing what key had.
func (m *Map[V]) Put(key string, v V) {
	if m == nil || m.max == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.vals[key]; ok {
		m.vals[key] = entry[V]{v, e.slot}
		return
	}
	if len(m.order) < m.max {
		m.order = append(m.order, key)
		m.vals[key] = entry[V]{v, len(m.order) - 1}
		return
	}
	if old := m.order[m.next]; old != "" {
		delete(m.vals, old)
	}
	m.order[m.next] = key
	m.vals[key] = entry[V]{v, m.next}
	m.next = (m.next + 1) % m.max
}

// Get returns what key has, and whether it has anything.
func (m *Map[V]) Get(key string) (V, bool) {
	var zero V
	if m == nil || m.max == 0 {
		return zero, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.vals[key]
	return e.v, ok
}

// Forget drops key.
func (m *Map[V]) Forget(key string) {
	if m == nil || m.max == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.vals[key]; ok {
		m.order[e.slot] = ""
		delete(m.vals, key)
	}
}

// ForgetFunc drops every key for which drop reports true.
func (m *Map[V]) ForgetFunc(drop func(key string) bool) {
	if m == nil || m.max == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, e := range m.vals {
		if drop(key) {
			m.order[e.slot] = ""
			delete(m.vals, key)
		}
	}
}

// Set remembers up to a fixed number of keys, forgetting the oldest first.
// The zero value remembers nothing; use NewSet.
type Set struct{ m *Map[struct{}] }

// NewSet returns a Set of at most max keys.
func NewSet(max int) *Set { return &Set{m: NewMap[struct{}](max)} }

// Add remembers key.
func (s *Set) Add(key string) {
	if s != nil {
		s.m.Put(key, struct{}{})
	}
}

// Has reports whether key is remembered.
func (s *Set) Has(key string) bool {
	if s == nil {
		return false
	}
	_, ok := s.m.Get(key)
	return ok
}
