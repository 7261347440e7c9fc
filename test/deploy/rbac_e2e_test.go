//go:build e2e

package deploy

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// access is one (verb, group, resource) a ServiceAccount may use.
type access struct{ verb, group, resource string }

func (a access) String() string {
	g := a.group
	if g == "" {
		g = "core"
	}
	return a.verb + " " + g + "/" + a.resource
}

// allowed is exactly what each function may do in its namespace: what the
// code calls (internal/kube and its callers). Everything else in the matrix
// below must be denied.
var allowed = map[string][]access{
	"flow-tekton-handler": {
		{"create", "tekton.dev", "taskruns"},
		{"get", "tekton.dev", "taskruns"},
		{"patch", "tekton.dev", "taskruns"}, // cancel
		{"create", "", "configmaps"},        // the start's claim
		{"get", "", "configmaps"},
		{"patch", "", "configmaps"},  // take a stale claim over, settle it
		{"delete", "", "configmaps"}, // the claim of a task that will not run
		{"create", "", "persistentvolumeclaims"},
		{"get", "", "persistentvolumeclaims"},
		{"list", "", "persistentvolumeclaims"},
		{"delete", "", "persistentvolumeclaims"},
	},
	"flow-tekton-sink": {
		{"get", "tekton.dev", "taskruns"},
		{"list", "tekton.dev", "taskruns"},   // sweep, and the watch's list
		{"watch", "tekton.dev", "taskruns"},  // the TaskRuns not reported yet
		{"patch", "tekton.dev", "taskruns"},  // reported mark
		{"delete", "tekton.dev", "taskruns"}, // deletion policy
		{"get", "", "configmaps"},            // the params ConfigMap: the report's claim
		{"patch", "", "configmaps"},          // the claim, settling the handler's
		{"delete", "", "configmaps"},         // with its TaskRun
		{"list", "", "pods"},                 // the watch's list
		{"watch", "", "pods"},                // our TaskRuns' pods: their steps ending
	},
	"flow-tekton-logs": {
		{"get", "tekton.dev", "taskruns"}, // the task's pod and steps
		{"get", "", "pods"},               // which steps have started
		{"get", "", "pods/log"},           // the steps' logs
	},
}

// allowedWithAuth is what config/auth adds for the ServiceAccounts it binds
// (authDelegated), everywhere (a ClusterRoleBinding of the built-in
// system:auth-delegator): reviewing request tokens (AUTH=token), and the
// access reviews that ClusterRole grants with it.
var allowedWithAuth = []access{
	{"create", "authentication.k8s.io", "tokenreviews"},
	{"create", "authorization.k8s.io", "subjectaccessreviews"},
}

// matrix is every verb on every resource either function could plausibly
// be given.
func matrix() []access {
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	resources := []struct{ group, resource string }{
		{"tekton.dev", "taskruns"},
		{"tekton.dev", "taskruns/status"},
		{"tekton.dev", "pipelineruns"},
		{"tekton.dev", "tasks"},
		{"", "configmaps"},
		{"", "persistentvolumeclaims"},
		{"", "persistentvolumes"},
		{"", "secrets"},
		{"", "pods"},
		{"", "pods/log"},
		{"", "pods/exec"},
		{"", "pods/attach"},
		{"", "serviceaccounts"},
		{"", "serviceaccounts/token"},
		{"", "events"},
		{"rbac.authorization.k8s.io", "roles"},
		{"rbac.authorization.k8s.io", "rolebindings"},
		{"rbac.authorization.k8s.io", "clusterrolebindings"},
		{"authentication.k8s.io", "tokenreviews"},
		{"authorization.k8s.io", "subjectaccessreviews"},
		{"authorization.k8s.io", "localsubjectaccessreviews"},
	}
	var m []access
	for _, r := range resources {
		for _, v := range verbs {
			m = append(m, access{v, r.group, r.resource})
		}
	}
	return m
}

// sar asks the API server whether the ServiceAccount may do a in namespace
// ns ("" = cluster-wide).
func sar(ctx context.Context, kube kubernetes.Interface, saNamespace, sa, ns string, a access) (bool, error) {
	resource, sub, _ := strings.Cut(a.resource, "/")
	r, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + saNamespace + ":" + sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + saNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: a.verb, Group: a.group, Resource: resource, Subresource: sub,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subjectaccessreview %s: %w", a, err)
	}
	return r.Status.Allowed, nil
}

// applyRBAC applies the ServiceAccounts, Roles and RoleBindings of config/
// into ns, for real.
func applyRBAC(ctx context.Context, t *testing.T, e env, ns string) {
	t.Helper()
	out, err := Kustomize(ctx, e.kubectl, configDir)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := SplitDocuments(out)
	if err != nil {
		t.Fatal(err)
	}
	var rbac []Document
	for _, d := range docs {
		switch d.Kind {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			rbac = append(rbac, d)
		}
	}
	if len(rbac) != 3*len(allowed) {
		t.Fatalf("config/ has %d RBAC objects, want %d ServiceAccounts, Roles and RoleBindings", len(rbac), len(allowed))
	}
	if _, err := e.run(ctx, JoinDocuments(rbac), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// applyAuthRBAC applies config/auth's ClusterRoleBinding for the
// ServiceAccounts of namespace ns (under a name of its own, as the
// config/auth overlay would) and waits until the API server enforces it.
func applyAuthRBAC(ctx context.Context, t *testing.T, e env, ns string) {
	t.Helper()
	out, err := Kustomize(ctx, e.kubectl, filepath.Join(configDir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := SplitDocuments(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Kind != "ClusterRoleBinding" {
		t.Fatalf("config/auth renders %d documents, want one ClusterRoleBinding", len(docs))
	}
	var crb rbacv1.ClusterRoleBinding
	if err := yaml.UnmarshalStrict(docs[0].YAML, &crb); err != nil {
		t.Fatal(err)
	}
	crb.Name += "-" + ns
	for i := range crb.Subjects {
		crb.Subjects[i].Namespace = ns
	}
	admin, err := kubernetes.NewForConfig(e.c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})
	// The authorizer sees new bindings through a watch: wait for it.
	for _, s := range crb.Subjects {
		wait.Until(ctx, t, s.Name+"'s auth-delegator binding to take effect", func() (bool, error) {
			ok, err := sar(ctx, admin, ns, s.Name, "", allowedWithAuth[0])
			if err != nil {
				t.Fatal(err)
			}
			return ok, nil
		})
	}
}

// TestRBAC applies config/'s RBAC to a namespace and asks the API server,
// for each ServiceAccount, every verb on every resource of the matrix, in
// its namespace, in another namespace and cluster-wide; with config/auth,
// the ServiceAccounts it binds (authDelegated) may review tokens (and
// access) everywhere and nothing else changes.
func TestRBAC(t *testing.T) {
	t.Parallel()
	for _, withAuth := range []bool{false, true} {
		t.Run(map[bool]string{false: "AUTH=none", true: "AUTH=token"}[withAuth], func(t *testing.T) {
			t.Parallel()
			testRBAC(t, withAuth)
		})
	}
}

func testRBAC(t *testing.T, withAuth bool) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ns := e.c.Namespace(t)
	other := e.c.Namespace(t)
	applyRBAC(ctx, t, e, ns)
	if withAuth {
		applyAuthRBAC(ctx, t, e, ns)
	}
	cfg := e.c.RESTConfig()
	cfg.QPS, cfg.Burst = 1000, 1000 // about a thousand reviews
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	for _, sa := range []string{"flow-tekton-handler", "flow-tekton-sink", "flow-tekton-logs", "default"} {
		want := map[access]bool{}
		for _, a := range allowed[sa] {
			want[a] = true
		}
		everywhere := map[access]bool{}
		if withAuth && slices.Contains(authDelegated, sa) {
			for _, a := range allowedWithAuth {
				everywhere[a] = true
			}
		}
		for _, a := range matrix() {
			for _, where := range []struct{ label, ns string }{{"own namespace", ns}, {"other namespace", other}, {"cluster-wide", ""}} {
				wantAllowed := want[a] && where.ns == ns || everywhere[a]
				got, err := sar(ctx, kube, ns, sa, where.ns, a)
				if err != nil {
					t.Fatal(err)
				}
				if got != wantAllowed {
					t.Errorf("%s: %s in %s: allowed=%v, want %v", sa, a, where.label, got, wantAllowed)
				}
			}
		}
		// Every allowed row is in the matrix, so none goes unchecked.
		for _, a := range append(allowed[sa], allowedWithAuth...) {
			if !containsAccess(matrix(), a) {
				t.Errorf("%s: allowed %s is not in the matrix", sa, a)
			}
		}
	}
}

// reviewToken reviews, as the client k, a token the admin requests for the
// namespace's default ServiceAccount, and checks the answer.
func reviewToken(ctx context.Context, k, admin kubernetes.Interface, ns string) error {
	const aud = "serving.knative.dev/service/test/flow-tekton-handler"
	tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "default", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{aud}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("admin token request: %w", err)
	}
	r, err := k.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: tok.Status.Token, Audiences: []string{aud}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if want := "system:serviceaccount:" + ns + ":default"; !r.Status.Authenticated || r.Status.User.Username != want {
		return fmt.Errorf("review %+v, want %s authenticated", r.Status, want)
	}
	return nil
}

func containsAccess(m []access, a access) bool {
	for _, x := range m {
		if x == a {
			return true
		}
	}
	return false
}

// TestRBACWithTokens repeats a few rows as the ServiceAccounts themselves,
// with tokens from the TokenRequest API: authentication, the RoleBinding's
// subject (no namespace: the binding's own) and authorization together.
func TestRBACWithTokens(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := e.c.Namespace(t)
	other := e.c.Namespace(t)
	applyRBAC(ctx, t, e, ns)
	applyAuthRBAC(ctx, t, e, ns)
	admin, err := kubernetes.NewForConfig(e.c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*rest.Config{}
	for _, sa := range []string{"flow-tekton-handler", "flow-tekton-sink", "flow-tekton-logs"} {
		tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for %s: %v", sa, err)
		}
		cfg := rest.AnonymousClientConfig(e.c.RESTConfig())
		cfg.BearerToken = tok.Status.Token
		clients[sa] = cfg
	}

	taskRun := &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac-probe"},
		Spec: pipelinev1.TaskRunSpec{TaskSpec: &pipelinev1.TaskSpec{
			Steps: []pipelinev1.Step{{Name: "probe", Image: "busybox", Script: "true"}},
		}},
	}
	dry := []string{metav1.DryRunAll}
	// The logs role's reads are of objects that do not exist here: the API
	// server authorizes a request before it looks the object up, so
	// NotFound means allowed.
	found := func(err error) error {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	for _, tc := range []struct {
		sa, name string
		call     func(context.Context, kubernetes.Interface, tektonclient.Interface) error
		allowed  bool
	}{
		{"flow-tekton-handler", "create taskrun", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			_, err := tk.TektonV1().TaskRuns(ns).Create(ctx, taskRun, metav1.CreateOptions{DryRun: dry})
			return err
		}, true},
		{"flow-tekton-handler", "list pvcs", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
			return err
		}, true},
		{"flow-tekton-handler", "get secret", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().Secrets(ns).Get(ctx, "flow-tekton-engine", metav1.GetOptions{})
			return err
		}, false},
		{"flow-tekton-handler", "delete taskrun", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			return tk.TektonV1().TaskRuns(ns).Delete(ctx, "rbac-probe", metav1.DeleteOptions{DryRun: dry})
		}, false},
		{"flow-tekton-handler", "review a token", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			return reviewToken(ctx, k, admin, ns)
		}, true},
		{"flow-tekton-handler", "mint a token", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "flow-tekton-sink", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
			return err
		}, false},
		{"flow-tekton-sink", "review a token", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			return reviewToken(ctx, k, admin, ns)
		}, true},
		{"flow-tekton-sink", "list taskruns", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			_, err := tk.TektonV1().TaskRuns(ns).List(ctx, metav1.ListOptions{})
			return err
		}, true},
		{"flow-tekton-sink", "create taskrun", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			_, err := tk.TektonV1().TaskRuns(ns).Create(ctx, taskRun, metav1.CreateOptions{DryRun: dry})
			return err
		}, false},
		{"flow-tekton-sink", "list taskruns cluster-wide", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			_, err := tk.TektonV1().TaskRuns("").List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"flow-tekton-logs", "get taskrun", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			_, err := tk.TektonV1().TaskRuns(ns).Get(ctx, "rbac-probe", metav1.GetOptions{})
			return found(err)
		}, true},
		{"flow-tekton-logs", "get pod", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().Pods(ns).Get(ctx, "rbac-probe-pod", metav1.GetOptions{})
			return found(err)
		}, true},
		{"flow-tekton-logs", "follow a step's log", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().Pods(ns).GetLogs("rbac-probe-pod", &corev1.PodLogOptions{Container: "step-probe", Follow: true}).DoRaw(ctx)
			return found(err)
		}, true},
		{"flow-tekton-logs", "get a step's log in another namespace", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().Pods(other).GetLogs("rbac-probe-pod", &corev1.PodLogOptions{Container: "step-probe"}).DoRaw(ctx)
			return err
		}, false},
		{"flow-tekton-logs", "get taskrun in another namespace", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			_, err := tk.TektonV1().TaskRuns(other).Get(ctx, "rbac-probe", metav1.GetOptions{})
			return err
		}, false},
		{"flow-tekton-logs", "list taskruns", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			_, err := tk.TektonV1().TaskRuns(ns).List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"flow-tekton-logs", "watch taskruns", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			w, err := tk.TektonV1().TaskRuns(ns).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}, false},
		{"flow-tekton-logs", "create taskrun", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			_, err := tk.TektonV1().TaskRuns(ns).Create(ctx, taskRun, metav1.CreateOptions{DryRun: dry})
			return err
		}, false},
		{"flow-tekton-logs", "delete taskrun", func(ctx context.Context, _ kubernetes.Interface, tk tektonclient.Interface) error {
			return tk.TektonV1().TaskRuns(ns).Delete(ctx, "rbac-probe", metav1.DeleteOptions{DryRun: dry})
		}, false},
		{"flow-tekton-logs", "list pods", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"flow-tekton-logs", "watch pods", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			w, err := k.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}, false},
		{"flow-tekton-logs", "get secret", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().Secrets(ns).Get(ctx, "flow-tekton-engine", metav1.GetOptions{})
			return err
		}, false},
		{"flow-tekton-logs", "get configmap", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			_, err := k.CoreV1().ConfigMaps(ns).Get(ctx, "flow-tekton-handler", metav1.GetOptions{})
			return err
		}, false},
		{"flow-tekton-logs", "review a token", func(ctx context.Context, k kubernetes.Interface, _ tektonclient.Interface) error {
			return reviewToken(ctx, k, admin, ns)
		}, false},
	} {
		t.Run(tc.sa+" "+tc.name, func(t *testing.T) {
			cfg := clients[tc.sa]
			k, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tk, err := tektonclient.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(ctx, k, tk)
			switch {
			case tc.allowed && err != nil:
				t.Errorf("%s may %s, got %v", tc.sa, tc.name, err)
			case !tc.allowed && !apierrors.IsForbidden(err):
				t.Errorf("%s may not %s, got %v (want Forbidden)", tc.sa, tc.name, err)
			}
		})
	}
}
