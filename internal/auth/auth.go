// Package auth authenticates the sender of a request (AUTH=token): a
// Kubernetes bearer token issued for the function's audience, as Knative
// Eventing's OIDC delivery sends it, checked by the apiserver with a
// TokenReview, optionally limited to named service accounts. Results are
// cached briefly under a hash of the token; the token itself is never
// stored or logged.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/boomerang-io/flow-tekton-handler/internal/status"
)

// CacheTTL is how long a review's answer is reused for the same token: the
// default of Kubernetes' own delegated authentication
// (--authentication-token-webhook-cache-ttl). A token the apiserver stops
// accepting (its service account deleted, say) is refused at most this long
// after.
const CacheTTL = 10 * time.Second

// CacheSize bounds the number of cached answers.
const CacheSize = 1024

// maxTokenBytes bounds the bearer token; Kubernetes tokens are about 1 KiB.
const maxTokenBytes = 8 << 10

// Field is the field a refusal names.
const Field = "authorization"

// Reviewer asks the apiserver who a token belongs to (kube.Client).
type Reviewer interface {
	ReviewToken(ctx context.Context, token string, audiences []string) (authenticationv1.TokenReviewStatus, error)
}

// Options configure an Authenticator.
type Options struct {
	// Audience the token must be issued for.
	Audience string
	// Allow lists the senders allowed as "namespace:serviceaccount"; empty
	// allows any sender the apiserver authenticates.
	Allow []string
}

// Authenticator decides whether a request's sender may be served. It is
// safe for concurrent use.
type Authenticator struct {
	reviewer Reviewer
	audience string
	allow    []string // service-account user names
	now      func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]entry
}

// entry is a cached answer: nil (allowed) or the refusal.
type entry struct {
	err   error
	until time.Time
}

// New returns an Authenticator asking r.
func New(r Reviewer, o Options) *Authenticator {
	a := &Authenticator{reviewer: r, audience: o.Audience, now: time.Now, cache: map[[sha256.Size]byte]entry{}}
	for _, s := range o.Allow {
		ns, name, _ := strings.Cut(s, ":")
		a.allow = append(a.allow, serviceAccountPrefix+ns+":"+name)
	}
	return a
}

// serviceAccountPrefix starts the user name of every service account.
const serviceAccountPrefix = "system:serviceaccount:"

// Authorize returns nil when the request's sender may be served, otherwise
// a *status.Error: 401 for a missing, malformed or unauthenticated token or
// one for another audience, 403 for a sender not allowed, 503 when the
// apiserver could not review the token.
func (a *Authenticator) Authorize(r *http.Request) error {
	token, err := bearer(r.Header)
	if err != nil {
		return err
	}
	key := sha256.Sum256([]byte(token))
	now := a.now()
	if e, ok := a.cached(key, now); ok {
		return e.err
	}
	e := a.decide(r.Context(), token, now)
	if e.until.After(now) {
		a.store(key, e, now)
	}
	return e.err
}

// decide reviews a token. The answer holds until e.until; an answer reached
// without the apiserver, or its failure, holds no longer than now and is
// not cached.
func (a *Authenticator) decide(ctx context.Context, token string, now time.Time) entry {
	c, err := peek(token)
	if err != nil {
		return entry{err: err, until: now}
	}
	// Refused here without asking the apiserver, which would refuse them too.
	if !slices.Contains(c.Audience, a.audience) {
		return entry{err: wrongAudience(a.audience), until: now}
	}
	until := now.Add(CacheTTL)
	if !c.Expiry.IsZero() {
		if !now.Before(c.Expiry) {
			return entry{err: unauthorized("the token has expired"), until: now}
		}
		until = earliest(until, c.Expiry)
	}
	st, err := a.reviewer.ReviewToken(ctx, token, []string{a.audience})
	switch {
	case apierrors.IsForbidden(err):
		// Misconfigured, yet a retry helps once the binding is there.
		return entry{err: status.New(status.Transient, Field, "the function may not review tokens: bind its service account to system:auth-delegator (config/auth)"), until: now}
	case err != nil:
		return entry{err: status.New(status.Transient, Field, "the token could not be reviewed; retry later"), until: now}
	case !st.Authenticated:
		return entry{err: unauthorized("the apiserver did not authenticate the token"), until: until}
	case !slices.Contains(st.Audiences, a.audience):
		// An audience-aware reviewer answers with the audience it checked.
		return entry{err: wrongAudience(a.audience), until: until}
	}
	return entry{err: a.allowed(st.User.Username), until: until}
}

// allowed applies the allow list to an authenticated user.
func (a *Authenticator) allowed(user string) error {
	if len(a.allow) == 0 || slices.Contains(a.allow, user) {
		return nil
	}
	if !strings.HasPrefix(user, serviceAccountPrefix) {
		return status.New(http.StatusForbidden, Field, fmt.Sprintf("%q is not a service account", user))
	}
	return status.New(http.StatusForbidden, Field, fmt.Sprintf("service account %s is not allowed (AUTH_ALLOW)", strings.TrimPrefix(user, serviceAccountPrefix)))
}

// bearer returns the token of the one Authorization header.
func bearer(h http.Header) (string, error) {
	values := h.Values("Authorization")
	switch {
	case len(values) == 0:
		return "", unauthorized("no Authorization header; send Authorization: Bearer <service account token>")
	case len(values) > 1:
		return "", unauthorized("more than one Authorization header")
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	token = strings.TrimSpace(token)
	switch {
	case !strings.EqualFold(scheme, "Bearer"):
		return "", unauthorized("the Authorization scheme is not Bearer")
	case token == "":
		return "", unauthorized("the bearer token is empty")
	case len(token) > maxTokenBytes:
		return "", unauthorized(fmt.Sprintf("the bearer token is longer than %d bytes", maxTokenBytes))
	}
	return token, nil
}

// claims are the parts of a JWT's payload read before the review.
type claims struct {
	Audience audience
	Expiry   time.Time
}

// peek reads the audience and expiry of a JWT without checking its
// signature: the apiserver checks it. After a successful review they are
// the claims the apiserver verified.
func peek(token string) (claims, error) {
	malformed := unauthorized("the bearer token is not a JWT")
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims{}, malformed
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return claims{}, malformed
	}
	var p struct {
		Aud audience `json:"aud"`
		Exp *float64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return claims{}, malformed
	}
	c := claims{Audience: p.Aud}
	if p.Exp != nil {
		c.Expiry = time.Unix(int64(*p.Exp), 0)
	}
	return c, nil
}

// audience is a JWT aud claim: one string or a list (RFC 7519 4.1.3).
type audience []string

// UnmarshalJSON accepts both forms.
func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

func unauthorized(reason string) error {
	return status.New(http.StatusUnauthorized, Field, reason)
}

func wrongAudience(aud string) error {
	return unauthorized(fmt.Sprintf("the token is not for audience %q", aud))
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// cached returns the answer cached for key, if it still holds.
func (a *Authenticator) cached(key [sha256.Size]byte, now time.Time) (entry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[key]
	if ok && !now.Before(e.until) {
		delete(a.cache, key)
		return entry{}, false
	}
	return e, ok
}

// store caches an answer. When the cache is full it drops what has
// expired, and then, if still full, any one entry.
func (a *Authenticator) store(key [sha256.Size]byte, e entry, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= CacheSize {
		for k, old := range a.cache {
			if !now.Before(old.until) {
				delete(a.cache, k)
			}
		}
	}
	if len(a.cache) >= CacheSize {
		for k := range a.cache {
			delete(a.cache, k)
			break
		}
	}
	a.cache[key] = e
}
