package fnproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Service is several replicas of one function behind one URL, as a Knative
// Service runs them: each request goes to the next live replica in turn,
// so copies sent at once, and a sender's retries, reach different
// replicas. A request to a replica that dies under it fails (502), as it
// does in a cluster, and the sender retries.
type Service struct {
	URL string // http://127.0.0.1:<port>, the address senders use

	srv *http.Server
	bin string
	env map[string]string

	mu       sync.Mutex
	replicas []*Proc
	next     int
}

// StartService runs n replicas of bin with env and serves them at one
// address until Close.
func StartService(ctx context.Context, bin string, env map[string]string, n int) (*Service, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Service{URL: "http://" + ln.Addr().String(), bin: bin, env: env}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.Add(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = ln.Close()
		s.Kill()
		return nil, err
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(r.In.Context().Value(replicaKey{}).(*Proc).url())
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "the replica did not answer: "+err.Error(), http.StatusBadGateway)
		},
	}
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := s.pick()
		if p == nil {
			http.Error(w, "no live replica", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), replicaKey{}, p)))
	})
	s.srv = &http.Server{Handler: front, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// replicaKey carries the replica a request goes to.
type replicaKey struct{}

// Add starts one more replica, as Kubernetes replaces one that died.
func (s *Service) Add(ctx context.Context) (*Proc, error) {
	p, err := Start(ctx, s.bin, s.env)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicas = append(s.replicas, p)
	return p, nil
}

// pick returns the next live replica, or nil when none is.
func (s *Service) pick() *Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range s.replicas {
		p := s.replicas[s.next%len(s.replicas)]
		s.next++
		select {
		case <-p.Done():
		default:
			return p
		}
	}
	return nil
}

// Replicas returns every replica started, live or not.
func (s *Service) Replicas() []*Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Proc(nil), s.replicas...)
}

// Stop sends SIGTERM to every replica at once and waits for them to
// drain, as a rollout does; see Proc.Stop.
func (s *Service) Stop(grace time.Duration) error {
	reps := s.Replicas()
	errs := make([]error, len(reps))
	var wg sync.WaitGroup
	for i, p := range reps {
		wg.Go(func() { errs[i] = p.Stop(grace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Kill stops every replica at once.
func (s *Service) Kill() {
	for _, p := range s.Replicas() {
		_ = p.Kill()
	}
}

// Close stops the replicas (SIGTERM, then SIGKILL after grace) and the
// front address.
func (s *Service) Close(grace time.Duration) error {
	err := s.Stop(grace)
	if s.srv != nil {
		_ = s.srv.Close()
	}
	return err
}

// Logs returns what every replica printed, replica by replica.
func (s *Service) Logs() string {
	var b strings.Builder
	for i, p := range s.Replicas() {
		fmt.Fprintf(&b, "--- replica %d (%s)\n%s", i, p.URL, p.Logs())
	}
	return b.String()
}

// LogLines returns the lines of every replica containing substr.
func (s *Service) LogLines(substr string) []string {
	var out []string
	for _, p := range s.Replicas() {
		out = append(out, p.LogLines(substr)...)
	}
	return out
}

// url is the replica's address, parsed.
func (p *Proc) url() *url.URL {
	u, err := url.Parse(p.URL)
	if err != nil {
		panic(err) // Start made it from a listener's address
	}
	return u
}
