package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/boomerang-io/flow-tekton-handler/internal/status"
)

// fakeReviewer answers with OnReview and counts the calls.
type fakeReviewer struct {
	OnReview func(token string, audiences []string) (authenticationv1.TokenReviewStatus, error)
	calls    atomic.Int32
}

var _ Reviewer = (*fakeReviewer)(nil)

func (f *fakeReviewer) ReviewToken(_ context.Context, token string, audiences []string) (authenticationv1.TokenReviewStatus, error) {
	f.calls.Add(1)
	return f.OnReview(token, audiences)
}

const aud = "serving.knative.dev/service/flow/flow-tekton-handler"

var t0 = time.Date(2026, 3, 4, 2, 41, 7, 0, time.UTC)

// jwt returns an unsigned token with the given claims; the fake reviewer
// stands in for the signature check.
func jwt(claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "RS256"}) + "." + enc(claims) + ".c2lnbmF0dXJl"
}

func token(sub string, audience any, exp time.Time) string {
	return jwt(map[string]any{"sub": sub, "aud": audience, "exp": exp.Unix()})
}

// review authenticates every token whose sub claim is a user as that user,
// for the audiences asked, and refuses "intruder".
func review(tok string, audiences []string) (authenticationv1.TokenReviewStatus, error) {
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var c struct{ Sub string }
	_ = json.Unmarshal(payload, &c)
	switch c.Sub {
	case "unavailable":
		return authenticationv1.TokenReviewStatus{}, errors.New("create tokenreview: connection refused")
	case "unbound":
		return authenticationv1.TokenReviewStatus{}, fmt.Errorf("create tokenreview: %w", apierrors.NewForbidden(
			schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}, "", errors.New("RBAC")))
	case "intruder":
		return authenticationv1.TokenReviewStatus{Authenticated: false, Error: "invalid signature"}, nil
	case "deaf":
		return authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "system:serviceaccount:flow:sender"}}, nil
	}
	return authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: audiences, User: authenticationv1.UserInfo{Username: c.Sub}}, nil
}

func request(headers ...string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "http://handler/", nil)
	for _, h := range headers {
		r.Header.Add("Authorization", h)
	}
	return r
}

func code(err error) int {
	var se *status.Error
	if errors.As(err, &se) {
		if se.Field != Field {
			return -1
		}
		return se.Code
	}
	if err == nil {
		return http.StatusOK
	}
	return 0
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	later := t0.Add(time.Hour)
	sender := "system:serviceaccount:flow:sender"
	good := token(sender, aud, later)
	for _, tc := range []struct {
		name       string
		allow      []string
		headers    []string
		want       int
		wantReview bool
	}{
		{"no header", nil, nil, 401, false},
		{"two headers", nil, []string{"Bearer " + good, "Bearer " + good}, 401, false},
		{"basic scheme", nil, []string{"Basic dXNlcjpwYXNz"}, 401, false},
		{"bearer without token", nil, []string{"Bearer "}, 401, false},
		{"token too long", nil, []string{"Bearer " + strings.Repeat("a", maxTokenBytes+1)}, 401, false},
		{"not a JWT", nil, []string{"Bearer 0123456789abcdef"}, 401, false},
		{"payload not base64", nil, []string{"Bearer a.b*c.d"}, 401, false},
		{"payload not JSON", nil, []string{"Bearer a." + base64.RawURLEncoding.EncodeToString([]byte("[1")) + ".d"}, 401, false},
		{"no audience", nil, []string{"Bearer " + jwt(map[string]any{"sub": sender, "exp": later.Unix()})}, 401, false},
		{"another audience", nil, []string{"Bearer " + token(sender, "https://kubernetes.default.svc", later)}, 401, false},
		{"expired", nil, []string{"Bearer " + token(sender, aud, t0.Add(-time.Second))}, 401, false},
		{"expires now", nil, []string{"Bearer " + token(sender, aud, t0)}, 401, false},
		{"allowed", nil, []string{"Bearer " + good}, 200, true},
		{"lower-case scheme", nil, []string{"bearer " + good}, 200, true},
		{"audience in a list", nil, []string{"Bearer " + token(sender, []string{"other", aud}, later)}, 200, true},
		{"no expiry", nil, []string{"Bearer " + jwt(map[string]any{"sub": sender, "aud": aud})}, 200, true},
		{"any user without an allow list", nil, []string{"Bearer " + token("alice", aud, later)}, 200, true},
		{"not authenticated", nil, []string{"Bearer " + token("intruder", aud, later)}, 401, true},
		{"reviewer not audience-aware", nil, []string{"Bearer " + token("deaf", aud, later)}, 401, true},
		{"apiserver unavailable", nil, []string{"Bearer " + token("unavailable", aud, later)}, 503, true},
		{"function not bound to system:auth-delegator", nil, []string{"Bearer " + token("unbound", aud, later)}, 503, true},
		{"in the allow list", []string{"other:sender", "flow:sender"}, []string{"Bearer " + good}, 200, true},
		{"not in the allow list", []string{"flow:other"}, []string{"Bearer " + good}, 403, true},
		{"same name, other namespace", []string{"other:sender"}, []string{"Bearer " + good}, 403, true},
		{"not a service account", []string{"flow:sender"}, []string{"Bearer " + token("alice", aud, later)}, 403, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeReviewer{OnReview: func(tok string, audiences []string) (authenticationv1.TokenReviewStatus, error) {
				if len(audiences) != 1 || audiences[0] != aud {
					t.Errorf("review for audiences %q, want [%q]", audiences, aud)
				}
				return review(tok, audiences)
			}}
			a := New(f, Options{Audience: aud, Allow: tc.allow})
			a.now = func() time.Time { return t0 }
			err := a.Authorize(request(tc.headers...))
			if got := code(err); got != tc.want {
				t.Fatalf("Authorize = %v (code %d), want %d", err, got, tc.want)
			}
			if reviewed := f.calls.Load() > 0; reviewed != tc.wantReview {
				t.Errorf("reviewed = %v, want %v", reviewed, tc.wantReview)
			}
			for _, h := range tc.headers {
				_, tok, _ := strings.Cut(h, " ")
				if err != nil && len(tok) > 8 && strings.Contains(err.Error(), tok) {
					t.Errorf("the refusal %q contains the token", err)
				}
			}
		})
	}
}

// TestCache follows one token through time: which calls reach the
// apiserver, and when a cached answer stops holding.
func TestCache(t *testing.T) {
	t.Parallel()
	type step struct {
		at        time.Duration // after t0
		want      int
		wantCalls int32 // reviews so far
		down      bool  // the apiserver fails from this step on
	}
	for _, tc := range []struct {
		name  string
		sub   string
		exp   time.Duration
		steps []step
	}{
		{"allow is reused for CacheTTL", "system:serviceaccount:flow:sender", time.Hour, []step{
			{0, 200, 1, false},
			{CacheTTL - time.Second, 200, 1, false},
			{CacheTTL, 200, 2, false},
		}},
		{"allow never outlives the token", "system:serviceaccount:flow:sender", 3 * time.Second, []step{
			{0, 200, 1, false},
			{2 * time.Second, 200, 1, false},
			{3 * time.Second, 401, 1, false},
		}},
		{"refusal is reused for CacheTTL", "intruder", time.Hour, []step{
			{0, 401, 1, false},
			{time.Second, 401, 1, false},
			{CacheTTL, 401, 2, false},
		}},
		{"forbidden is reused for CacheTTL", "system:serviceaccount:flow:other", time.Hour, []step{
			{0, 403, 1, false},
			{time.Second, 403, 1, false},
		}},
		{"a failed review is not cached", "system:serviceaccount:flow:sender", time.Hour, []step{
			{0, 503, 1, true},
			{0, 503, 2, true},
			{time.Second, 200, 3, false},
		}},
		{"a cached allow is served while the apiserver is down", "system:serviceaccount:flow:sender", time.Hour, []step{
			{0, 200, 1, false},
			{time.Second, 200, 1, true},
			{CacheTTL, 503, 2, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var down atomic.Bool
			f := &fakeReviewer{OnReview: func(tok string, audiences []string) (authenticationv1.TokenReviewStatus, error) {
				if down.Load() {
					return authenticationv1.TokenReviewStatus{}, errors.New("connection refused")
				}
				return review(tok, audiences)
			}}
			a := New(f, Options{Audience: aud, Allow: []string{"flow:sender"}})
			r := request("Bearer " + token(tc.sub, aud, t0.Add(tc.exp)))
			for i, s := range tc.steps {
				down.Store(s.down)
				a.now = func() time.Time { return t0.Add(s.at) }
				err := a.Authorize(r)
				if got := code(err); got != s.want {
					t.Errorf("step %d at +%s: code %d (%v), want %d", i, s.at, got, err, s.want)
				}
				if n := f.calls.Load(); n != s.wantCalls {
					t.Errorf("step %d at +%s: %d reviews, want %d", i, s.at, n, s.wantCalls)
				}
			}
		})
	}
}

// Refusals decided without the apiserver are not cached: junk cannot push
// real answers out.
func TestLocalRefusalsNotCached(t *testing.T) {
	t.Parallel()
	a := New(&fakeReviewer{OnReview: review}, Options{Audience: aud})
	for i := range 100 {
		_ = a.Authorize(request(fmt.Sprintf("Bearer junk-%d", i)))
		_ = a.Authorize(request("Bearer " + token("x", fmt.Sprintf("other-%d", i), t0.Add(time.Hour))))
	}
	if n := len(a.cache); n != 0 {
		t.Fatalf("%d cached answers for refusals made without the apiserver", n)
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	f := &fakeReviewer{OnReview: review}
	a := New(f, Options{Audience: aud})
	a.now = func() time.Time { return t0 }
	for i := range CacheSize + 100 {
		if err := a.Authorize(request("Bearer " + token(fmt.Sprintf("user-%d", i), aud, t0.Add(time.Hour)))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(a.cache); n > CacheSize {
		t.Fatalf("%d cached answers, want at most %d", n, CacheSize)
	}
	// Expired answers go first when the cache is full.
	a.now = func() time.Time { return t0.Add(CacheTTL) }
	if err := a.Authorize(request("Bearer " + token("late", aud, t0.Add(time.Hour)))); err != nil {
		t.Fatal(err)
	}
	if n := len(a.cache); n != 1 {
		t.Fatalf("%d cached answers after every other one expired, want 1", n)
	}
}

// Concurrent requests share the cache safely (run with -race).
func TestConcurrent(t *testing.T) {
	t.Parallel()
	f := &fakeReviewer{OnReview: review}
	a := New(f, Options{Audience: aud, Allow: []string{"flow:sender"}})
	tokens := []string{
		token("system:serviceaccount:flow:sender", aud, time.Now().Add(time.Hour)),
		token("system:serviceaccount:flow:other", aud, time.Now().Add(time.Hour)),
		token("intruder", aud, time.Now().Add(time.Hour)),
	}
	want := []int{200, 403, 401}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			if got := code(a.Authorize(request("Bearer " + tokens[i%3]))); got != want[i%3] {
				t.Errorf("token %d: code %d, want %d", i%3, got, want[i%3])
			}
		})
	}
	wg.Wait()
}
