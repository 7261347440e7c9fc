//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// handlerService is the handler's Knative Service name (func.yaml), which
// Knative Serving passes as K_SERVICE and the default audience names.
const handlerService = "flow-tekton-handler"

// newAuthStack starts the handler with AUTH=token, allowing only the
// ServiceAccount allowed of a namespace of senders, with config/auth's
// binding for its own ServiceAccount. It returns the stack, the senders'
// namespace and the handler's audience.
func newAuthStack(t *testing.T, env map[string]string) (*stack, string, string) {
	t.Helper()
	senders := cluster.ForTest(t).Namespace(t)
	e := map[string]string{
		"AUTH":       "token",
		"AUTH_ALLOW": senders + ":allowed",
		"K_SERVICE":  handlerService, // as Knative Serving sets it: AUTH_AUDIENCE is derived
	}
	for k, v := range env {
		e[k] = v
	}
	s := newStack(t, e)
	s.bindAuthDelegator()
	for _, sa := range []string{"allowed", "other"} {
		s.serviceAccount(senders, sa)
	}
	return s, senders, config.ServiceAudience(s.ns, handlerService)
}

// bindAuthDelegator applies config/auth's ClusterRoleBinding for the
// stack's ServiceAccounts and waits until the apiserver enforces it.
func (s *stack) bindAuthDelegator() {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "auth", "auth-delegator.yaml"))
	if err != nil {
		s.t.Fatal(err)
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(b, nil, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	crb, ok := obj.(*rbacv1.ClusterRoleBinding)
	if !ok {
		s.t.Fatalf("config/auth/auth-delegator.yaml holds a %T", obj)
	}
	crb.Name += "-" + s.ns // cluster-scoped: one per test namespace
	for i := range crb.Subjects {
		crb.Subjects[i].Namespace = s.ns
	}
	ctx := context.Background()
	if _, err := s.kube.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = s.kube.RbacV1().ClusterRoleBindings().Delete(ctx, crb.Name, metav1.DeleteOptions{}) })
	wait.Eventually(s.t, 30*time.Second, "the auth-delegator binding to take effect", func() (bool, error) {
		return s.may("flow-tekton-handler", authorizationv1.ResourceAttributes{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"})
	})
}

// may asks the apiserver whether the stack's ServiceAccount sa may do what.
func (s *stack) may(sa string, what authorizationv1.ResourceAttributes) (bool, error) {
	r, err := s.kube.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + s.ns + ":" + sa,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + s.ns, "system:authenticated"},
			ResourceAttributes: &what,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return r.Status.Allowed, nil
}

// serviceAccount creates a ServiceAccount and returns it.
func (s *stack) serviceAccount(ns, name string) *corev1.ServiceAccount {
	s.t.Helper()
	sa, err := s.kube.CoreV1().ServiceAccounts(ns).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		sa, err = s.kube.CoreV1().ServiceAccounts(ns).Get(context.Background(), name, metav1.GetOptions{})
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return sa
}

// token requests a token for a ServiceAccount from the TokenRequest API,
// for the given audiences (none: the apiserver's own).
func (s *stack) token(ns, sa string, audiences ...string) string {
	s.t.Helper()
	expiry := int64(600) // the least the API issues
	tok, err := s.kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tok.Status.Token
}

// signedToken signs, with the cluster's service-account key, the claims
// kube-apiserver puts in a ServiceAccount's token, valid from an hour
// before exp until exp.
func (s *stack) signedToken(sa *corev1.ServiceAccount, audience string, exp time.Time) string {
	s.t.Helper()
	tok, err := s.c.SignToken(map[string]any{
		"iss": cluster.Issuer,
		"sub": "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
		"aud": []string{audience},
		"iat": exp.Add(-time.Hour).Unix(),
		"nbf": exp.Add(-time.Hour).Unix(),
		"exp": exp.Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      sa.Namespace,
			"serviceaccount": map[string]string{"name": sa.Name, "uid": string(sa.UID)},
		},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// answer is the handler's reply to one request.
type answer struct {
	code        int
	field, body string
}

// postAs sends a structured CloudEvent with an Authorization header ("" for
// none).
func (s *stack) postAs(body []byte, authorization string) answer {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.handler.URL, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var doc struct{ Field string }
	_ = json.Unmarshal(b, &doc)
	return answer{code: resp.StatusCode, field: doc.Field, body: string(b)}
}

// TestAuthToken: with AUTH=token the handler serves a request only with a
// token the apiserver issued for its audience to an allowed ServiceAccount;
// every other request is refused with the right code, creates nothing and
// reaches no Engine.
func TestAuthToken(t *testing.T) {
	s, senders, aud := newAuthStack(t, nil)
	allowed := s.serviceAccount(senders, "allowed")
	good := s.token(senders, "allowed", aud)
	gone := s.serviceAccount(senders, "gone")
	goneToken := s.token(senders, "gone", aud)
	if err := s.kube.CoreV1().ServiceAccounts(senders).Delete(context.Background(), gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The apiserver reads ServiceAccounts through a cache: wait until it
	// knows, so the handler's answer cannot depend on the race.
	wait.Eventually(s.t, 30*time.Second, "the deleted ServiceAccount's token to be refused", func() (bool, error) {
		r, err := s.kube.AuthenticationV1().TokenReviews().Create(context.Background(), &authv1.TokenReview{
			Spec: authv1.TokenReviewSpec{Token: goneToken, Audiences: []string{aud}},
		}, metav1.CreateOptions{})
		return err == nil && !r.Status.Authenticated, err
	})
	otherToken := s.token(senders, "other", aud)
	expired := s.signedToken(allowed, aud, time.Now().Add(-time.Hour))
	// The handler refuses an expired token without asking; the apiserver
	// would refuse it too.
	if r, err := s.kube.AuthenticationV1().TokenReviews().Create(context.Background(), &authv1.TokenReview{
		Spec: authv1.TokenReviewSpec{Token: expired, Audiences: []string{aud}},
	}, metav1.CreateOptions{}); err != nil || r.Status.Authenticated {
		t.Fatalf("the apiserver's review of the expired token: %v %+v", err, r)
	}
	forged := good[:strings.LastIndex(good, ".")] + otherToken[strings.LastIndex(otherToken, "."):]

	refused := []struct {
		name, authorization string
		want                int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"basic credentials", "Basic YWxsb3dlZDpwdw==", http.StatusUnauthorized},
		{"token for the apiserver's audience", "Bearer " + s.token(senders, "allowed"), http.StatusUnauthorized},
		{"token for the sink's audience", "Bearer " + s.token(senders, "allowed", config.ServiceAudience(s.ns, "flow-tekton-sink")), http.StatusUnauthorized},
		{"expired token", "Bearer " + expired, http.StatusUnauthorized},
		{"forged signature", "Bearer " + forged, http.StatusUnauthorized},
		{"deleted service account", "Bearer " + goneToken, http.StatusUnauthorized},
		{"service account not allowed", "Bearer " + otherToken, http.StatusForbidden},
	}
	for i, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			a := s.postAs(customTask(t, taskID(0xa00+i)), tc.authorization)
			if a.code != tc.want || a.field != "authorization" {
				t.Fatalf("answered %d %s, want %d naming authorization", a.code, a.body, tc.want)
			}
		})
	}

	served := []struct{ name, token string }{
		{"TokenRequest token", good},
		// The refused expired token differs from this one by its expiry only.
		{"token signed like the apiserver's", s.signedToken(allowed, aud, time.Now().Add(10*time.Minute))},
	}
	for i, tc := range served {
		t.Run(tc.name, func(t *testing.T) {
			if a := s.postAs(customTask(t, taskID(0xb00+i)), "Bearer "+tc.token); a.code != http.StatusOK {
				t.Fatalf("answered %d %s, want 200", a.code, a.body)
			}
			if _, err := s.taskRun(name(taskID(0xb00 + i))); err != nil {
				t.Fatalf("no TaskRun: %v", err)
			}
			if n := len(s.calls(enginestub.KindTaskRunStart, taskID(0xb00+i))); n != 1 {
				t.Errorf("%d Engine starts, want 1", n)
			}
		})
	}

	// The requests were answered after their work, so what a refused one
	// had created would be there by now.
	ctx := context.Background()
	for i, tc := range refused {
		id := taskID(0xa00 + i)
		if _, err := s.taskRun(name(id)); !apierrors.IsNotFound(err) {
			t.Errorf("%s: TaskRun %s: %v, want NotFound", tc.name, name(id), err)
		}
		if _, err := s.kube.CoreV1().ConfigMaps(s.ns).Get(ctx, tekton.ConfigMapName("bmrg-flow", id), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: ConfigMap: %v, want NotFound", tc.name, err)
		}
		if n := len(s.engine.CallsFor(id)); n != 0 {
			t.Errorf("%s: %d Engine calls, want none", tc.name, n)
		}
	}
	if n := len(s.taskRuns()); n != len(served) {
		t.Errorf("%d TaskRuns, want %d", n, len(served))
	}
	starts := 0
	for _, c := range s.engine.Calls() {
		if c.Kind == enginestub.KindTaskRunStart {
			starts++
		}
	}
	if starts != len(served) {
		t.Errorf("%d Engine starts, want %d", starts, len(served))
	}

	// The handler's ServiceAccount may now review tokens, and still not
	// mint them or read Secrets.
	for _, tc := range []struct {
		what authorizationv1.ResourceAttributes
		want bool
	}{
		{authorizationv1.ResourceAttributes{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"}, true},
		{authorizationv1.ResourceAttributes{Namespace: senders, Verb: "create", Resource: "serviceaccounts", Subresource: "token"}, false},
		{authorizationv1.ResourceAttributes{Namespace: s.ns, Verb: "create", Resource: "serviceaccounts", Subresource: "token"}, false},
		{authorizationv1.ResourceAttributes{Namespace: s.ns, Verb: "get", Resource: "secrets"}, false},
		{authorizationv1.ResourceAttributes{Namespace: senders, Verb: "create", Group: "tekton.dev", Resource: "taskruns"}, false},
	} {
		if got, err := s.may("flow-tekton-handler", tc.what); err != nil || got != tc.want {
			t.Errorf("handler may %s %s/%s in %q: %v (%v), want %v", tc.what.Verb, tc.what.Resource, tc.what.Subresource, tc.what.Namespace, got, err, tc.want)
		}
	}

	logs := s.handler.Logs()
	if !strings.Contains(logs, `"outcome":"refused"`) {
		t.Errorf("no refusal logged:\n%s", logs)
	}
	for _, tok := range []string{good, otherToken, goneToken, forged, expired} {
		if strings.Contains(logs, tok[strings.LastIndex(tok, ".")+1:]) {
			t.Errorf("the handler logged a token")
		}
	}
	s.noViolations()
}

// TestAuthAPIServerDown: a token that cannot be reviewed is answered 503
// (the sender retries), not cached, and served once the apiserver is back.
func TestAuthAPIServerDown(t *testing.T) {
	s, senders, aud := newAuthStack(t, map[string]string{"KUBE_TIMEOUT": "2s"})
	tok := s.token(senders, "allowed", aud)
	id := taskID(0xc00)
	start, err := s.c.StopAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	a := s.postAs(customTask(t, id), "Bearer "+tok)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := start(ctx); err != nil {
		t.Fatal(err)
	}
	if a.code != http.StatusServiceUnavailable || a.field != "authorization" {
		t.Fatalf("with the apiserver down: %d %s, want 503 naming authorization", a.code, a.body)
	}
	if n := len(s.engine.CallsFor(id)); n != 0 {
		t.Fatalf("%d Engine calls for an unreviewed request", n)
	}
	if a := s.postAs(customTask(t, id), "Bearer "+tok); a.code != http.StatusOK {
		t.Fatalf("after the apiserver is back: %d %s, want 200", a.code, a.body)
	}
	if _, err := s.taskRun(name(id)); err != nil {
		t.Fatalf("no TaskRun: %v", err)
	}
}
