package kube

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1/pipelinev1test"
)

// objectMeta names an object of ref's identity.
func objectMeta(name, ref string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "flow", Labels: map[string]string{contract.LabelTaskRunRef: ref}}
}

func TestCreateAdoptsSameIdentity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newOn(k8sfake.NewClientset(), tektonfake.NewSimpleClientset(), "flow", time.Second)
	for i, wantCreated := range []bool{true, false} {
		tr, created, err := c.CreateTaskRun(ctx, &pipelinev1.TaskRun{ObjectMeta: objectMeta("tr", "a")})
		if err != nil || created != wantCreated || tr == nil || tr.Name != "tr" {
			t.Errorf("CreateTaskRun #%d = %v, %v, %v; want created %v", i, tr, created, err, wantCreated)
		}
		created, err = c.CreatePVC(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: objectMeta("pvc", "a")})
		if err != nil || created != wantCreated {
			t.Errorf("CreatePVC #%d = %v, %v; want created %v", i, created, err, wantCreated)
		}
		cm, created, err := c.CreateConfigMap(ctx, &corev1.ConfigMap{ObjectMeta: objectMeta("cm", "a")})
		if err != nil || created != wantCreated || cm == nil || cm.Name != "cm" {
			t.Errorf("CreateConfigMap #%d = %v, %v, %v; want created %v", i, cm, created, err, wantCreated)
		}
	}
	_, _, err := c.CreateTaskRun(ctx, &pipelinev1.TaskRun{ObjectMeta: objectMeta("tr", "b")})
	if !errors.Is(err, ErrConflict) || strings.Count(err.Error(), "create taskrun flow/tr") != 1 {
		t.Errorf("taskrun of another identity: %v, want one create taskrun ErrConflict", err)
	}
	if _, err := c.CreatePVC(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: objectMeta("pvc", "b")}); !errors.Is(err, ErrConflict) {
		t.Errorf("pvc of another identity: %v, want ErrConflict", err)
	}
	if _, _, err := c.CreateConfigMap(ctx, &corev1.ConfigMap{ObjectMeta: objectMeta("cm", "b")}); !errors.Is(err, ErrConflict) {
		t.Errorf("configmap of another identity: %v, want ErrConflict", err)
	}
}

func TestCreateRejected(t *testing.T) {
	t.Parallel()
	k := k8sfake.NewClientset()
	k.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "cm", nil)
	})
	c := newOn(k, tektonfake.NewSimpleClientset(), "flow", time.Second)
	_, _, err := c.CreateConfigMap(context.Background(), &corev1.ConfigMap{ObjectMeta: objectMeta("cm", "a")})
	if !errors.Is(err, ErrRejected) || !strings.HasPrefix(err.Error(), "create configmap flow/cm: ") {
		t.Errorf("err = %v, want ErrRejected under create configmap flow/cm", err)
	}
}

func TestGetOrNil(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := k8sfake.NewClientset(&corev1.PersistentVolumeClaim{ObjectMeta: objectMeta("pvc", "a")})
	k.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.GetAction).GetName() == "broken" {
			return true, nil, apierrors.NewServiceUnavailable("etcd down")
		}
		return false, nil, nil
	})
	c := newOn(k, tektonfake.NewSimpleClientset(), "flow", time.Second)
	if pvc, err := c.GetPVC(ctx, "pvc"); err != nil || pvc == nil || pvc.Name != "pvc" {
		t.Errorf("GetPVC = %v, %v", pvc, err)
	}
	if tr, err := c.GetTaskRun(ctx, "missing"); err != nil || tr != nil {
		t.Errorf("GetTaskRun of a missing TaskRun = %v, %v; want nil, nil", tr, err)
	}
	if pod, err := c.GetPod(ctx, "missing"); err != nil || pod != nil {
		t.Errorf("GetPod of a missing pod = %v, %v; want nil, nil", pod, err)
	}
	if _, err := c.GetPod(ctx, "broken"); err == nil || !strings.HasPrefix(err.Error(), "get pod flow/broken: ") {
		t.Errorf("GetPod error = %v, want it under get pod flow/broken", err)
	}
}

func TestReviewToken(t *testing.T) {
	t.Parallel()
	gr := schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}
	for _, tc := range []struct {
		name    string
		react   func(*authenticationv1.TokenReview) (*authenticationv1.TokenReview, error)
		want    authenticationv1.TokenReviewStatus
		wantErr bool
	}{
		{"authenticated", func(r *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
			r.Status = authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: r.Spec.Audiences,
				User: authenticationv1.UserInfo{Username: "system:serviceaccount:flow:sender"}}
			return r, nil
		}, authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"aud"},
			User: authenticationv1.UserInfo{Username: "system:serviceaccount:flow:sender"}}, false},
		{"not authenticated is no error", func(r *authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
			r.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
			return r, nil
		}, authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}, false},
		{"forbidden", func(*authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
			return nil, apierrors.NewForbidden(gr, "", errors.New("RBAC: not bound to system:auth-delegator"))
		}, authenticationv1.TokenReviewStatus{}, true},
		{"unavailable", func(*authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
			return nil, apierrors.NewServiceUnavailable("etcd down")
		}, authenticationv1.TokenReviewStatus{}, true},
		{"timeout", func(*authenticationv1.TokenReview) (*authenticationv1.TokenReview, error) {
			return nil, context.DeadlineExceeded
		}, authenticationv1.TokenReviewStatus{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := k8sfake.NewClientset()
			k.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				r := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
				if r.Spec.Token != "tok" || !slices.Equal(r.Spec.Audiences, []string{"aud"}) {
					t.Errorf("review spec %+v", r.Spec)
				}
				out, err := tc.react(r)
				if out == nil {
					return true, nil, err
				}
				return true, out, err
			})
			c := newOn(k, tektonfake.NewSimpleClientset(), "flow", time.Second)
			got, err := c.ReviewToken(context.Background(), "tok", []string{"aud"})
			if tc.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrUnavailable)) {
				t.Fatalf("err = %v, want ErrUnavailable: %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRelease checks that a pending TaskRun is released in one request,
// and that one cancelled meanwhile, already released or gone is left as it
// is.
func TestRelease(t *testing.T) {
	t.Parallel()
	pending := func(name string) *pipelinev1.TaskRun {
		tr := &pipelinev1.TaskRun{ObjectMeta: objectMeta(name, name), Spec: pipelinev1.TaskRunSpec{Status: pipelinev1.TaskRunSpecStatusPending}}
		tr.Annotations = map[string]string{contract.AnnotationClaimed: contract.ClaimValue(time.Unix(1, 0)), "keep": "x"}
		return tr
	}
	cancelled := pending("cancelled")
	cancelled.Spec.Status = pipelinev1.TaskRunSpecStatusCancelled
	released := pending("released")
	released.Spec.Status = ""
	fake := tektonfake.NewSimpleClientset(asTekton(t, pending("pending")), asTekton(t, cancelled), asTekton(t, released))
	c := newOn(k8sfake.NewClientset(), fake, "flow", time.Second)
	tests := []struct {
		name, status string
		claimed      bool
		requests     []string
	}{
		{"pending", "", false, []string{"patch"}},
		{"cancelled", pipelinev1.TaskRunSpecStatusCancelled, true, []string{"patch", "get"}},
		{"released", "", true, []string{"patch", "get"}},
		{"gone", "", false, []string{"patch"}},
	}
	for _, tc := range tests {
		fake.ClearActions()
		if err := c.ReleaseTaskRun(t.Context(), tc.name); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var verbs []string
		for _, a := range fake.Actions() {
			verbs = append(verbs, a.GetVerb())
		}
		if !slices.Equal(verbs, tc.requests) {
			t.Errorf("%s: requests %v, want %v", tc.name, verbs, tc.requests)
		}
		if tc.name == "gone" {
			continue
		}
		got, err := c.GetTaskRun(t.Context(), tc.name)
		if err != nil {
			t.Fatal(err)
		}
		_, claimed := got.Annotations[contract.AnnotationClaimed]
		if string(got.Spec.Status) != tc.status || claimed != tc.claimed || got.Annotations["keep"] != "x" {
			t.Errorf("%s: status %q, claimed %v, annotations %v; want status %q, claimed %v", tc.name, got.Spec.Status, claimed, got.Annotations, tc.status, tc.claimed)
		}
	}
}

// TestConfigMapClaim checks the claims on a ConfigMap: a claim is sent with
// the version read; a drop holds only while the claim is mine; the
// report's claim removes the start's and sets the owner, keeping other
// annotations.
func TestConfigMapClaim(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cm := &corev1.ConfigMap{ObjectMeta: objectMeta("cm", "a")}
	cm.Annotations = map[string]string{contract.AnnotationClaimed: contract.ClaimValue(time.Unix(1, 0)), "keep": "x"}
	cm.ResourceVersion = "7"
	fake := k8sfake.NewClientset(cm)
	c := newOn(fake, tektonfake.NewSimpleClientset(), "flow", time.Second)
	read, err := c.GetConfigMap(ctx, "cm")
	if err != nil || read == nil {
		t.Fatalf("GetConfigMap = %v, %v", read, err)
	}
	mine := time.Unix(100, 0)
	if won, err := c.ClaimConfigMap(ctx, read, mine); err != nil || !won {
		t.Fatalf("claim = %v, %v", won, err)
	}
	// The version read is the precondition (the apiserver refuses a stale
	// one: the end-to-end tests race replicas on it).
	acts := fake.Actions()
	if p, ok := acts[len(acts)-1].(k8stesting.PatchAction); !ok || !strings.Contains(string(p.GetPatch()), `"resourceVersion":"`+read.ResourceVersion+`"`) {
		t.Fatalf("claim sent %+v, want a patch with resourceVersion %q", acts[len(acts)-1], read.ResourceVersion)
	}
	fake.PrependReactor("patch", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if strings.Contains(string(a.(k8stesting.PatchAction).GetPatch()), `"resourceVersion":"stale"`) {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "cm", errors.New("changed"))
		}
		return false, nil, nil
	})
	stale := read.DeepCopy()
	stale.ResourceVersion = "stale"
	if won, err := c.ClaimConfigMap(ctx, stale, time.Unix(200, 0)); err != nil || won {
		t.Fatalf("claim with a stale version = %v, %v; want lost", won, err)
	}
	claim := func() string {
		got, err := c.GetConfigMap(ctx, "cm")
		if err != nil {
			t.Fatal(err)
		}
		return got.Annotations[contract.AnnotationClaimed]
	}
	if got := claim(); got != contract.ClaimValue(mine) {
		t.Fatalf("claim %q after the claim, want %q", got, contract.ClaimValue(mine))
	}
	if err := c.DropConfigMapClaim(ctx, "cm", contract.AnnotationClaimed, contract.ClaimValue(time.Unix(5, 0))); err != nil {
		t.Fatalf("drop of another's claim: %v", err)
	}
	if got := claim(); got != contract.ClaimValue(mine) {
		t.Fatalf("another's drop changed the claim to %q", got)
	}
	if err := c.DropConfigMapClaim(ctx, "cm", contract.AnnotationClaimed, contract.ClaimValue(mine)); err != nil {
		t.Fatal(err)
	}
	if got := claim(); got != contract.ClaimValue(time.Time{}) {
		t.Fatalf("claim %q after my drop, want the zero time", got)
	}
	// The report's claim settles the start's: the claim dropped, the
	// TaskRun the owner, other annotations kept.
	got, err := c.GetConfigMap(ctx, "cm")
	if err != nil {
		t.Fatal(err)
	}
	got.OwnerReferences = []metav1.OwnerReference{{APIVersion: "tekton.dev/v1", Kind: "TaskRun", Name: "tr", UID: "u1"}}
	if won, err := c.ClaimReport(ctx, got, mine); err != nil || !won {
		t.Fatalf("ClaimReport = %v, %v", won, err)
	}
	if got, err = c.GetConfigMap(ctx, "cm"); err != nil {
		t.Fatal(err)
	}
	if _, claimed := got.Annotations[contract.AnnotationClaimed]; claimed || got.Annotations[contract.AnnotationReporting] != contract.ClaimValue(mine) ||
		got.Annotations["keep"] != "x" || len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != "u1" {
		t.Fatalf("after the report's claim: annotations %v, owners %v; want the report claimed, no start claim, keep=x, owner u1", got.Annotations, got.OwnerReferences)
	}
	for _, name := range []string{"cm", "gone"} {
		if err := c.DropConfigMapClaim(ctx, name, contract.AnnotationClaimed, contract.ClaimValue(mine)); err != nil {
			t.Errorf("drop on %s (settled or gone): %v", name, err)
		}
	}
}

// The start's claim on a ConfigMap is taken once, with no read, by the
// report's first claim, which moves it. A ConfigMap without it, of another
// task, or gone is left as it is.
func TestStartClaimTakenOnce(t *testing.T) {
	t.Parallel()
	at := time.Unix(100, 0)
	owner := []metav1.OwnerReference{{APIVersion: "tekton.dev/v1", Kind: "TaskRun", Name: "tr", UID: "u1"}}
	want := &corev1.ConfigMap{ObjectMeta: objectMeta("cm", "a")}
	want.OwnerReferences = owner
	claimed := map[string]string{contract.AnnotationClaimed: contract.ClaimValue(time.Unix(1, 0)), "keep": "x"}
	for _, tc := range []struct {
		name        string
		ref         string            // the stored ConfigMap's task; "": none stored
		annotations map[string]string // the stored ConfigMap's
		wantTaken   bool
		wantReports string // the reporting annotation after
	}{
		{"claim", "a", claimed, true, contract.ClaimValue(at)},
		{"no start claim", "a", map[string]string{"keep": "x"}, false, ""},
		{"no annotations", "a", nil, false, ""},
		{"another task's", "b", claimed, false, ""},
		{"gone", "", nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			fake := k8sfake.NewClientset()
			stored := &corev1.ConfigMap{ObjectMeta: objectMeta("cm", tc.ref)}
			stored.Annotations = maps.Clone(tc.annotations)
			if tc.ref != "" {
				fake = k8sfake.NewClientset(stored)
			}
			c := newOn(fake, tektonfake.NewSimpleClientset(), "flow", time.Second)
			if taken, err := c.ClaimReportFirst(ctx, want, at); err != nil || taken != tc.wantTaken {
				t.Fatalf("ClaimReportFirst = %v, %v; want %v", taken, err, tc.wantTaken)
			}
			if taken, err := c.ClaimReportFirst(ctx, want, at); err != nil || taken {
				t.Fatalf("a second ClaimReportFirst = %v, %v; want nothing left to take", taken, err)
			}
			if tc.ref == "" {
				return
			}
			got, err := c.GetConfigMap(ctx, "cm")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantTaken {
				if !maps.Equal(got.Annotations, stored.Annotations) || len(got.OwnerReferences) != 0 {
					t.Fatalf("annotations %v, owners %v; want them as stored, %v and none", got.Annotations, got.OwnerReferences, stored.Annotations)
				}
				return
			}
			if _, ok := got.Annotations[contract.AnnotationClaimed]; ok || got.Annotations[contract.AnnotationReporting] != tc.wantReports ||
				got.Annotations["keep"] != "x" || len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != "u1" {
				t.Fatalf("annotations %v, owners %v; want no start claim, reporting %q, keep=x, owner u1", got.Annotations, got.OwnerReferences, tc.wantReports)
			}
		})
	}
}

// asTekton returns tr as Tekton's own TaskRun, to seed Tekton's fake.
func asTekton(t *testing.T, tr *pipelinev1.TaskRun) runtime.Object {
	t.Helper()
	out, err := pipelinev1test.ToTekton(tr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newOn(k kubernetes.Interface, t versioned.Interface, ns string, timeout time.Duration) *Client {
	return New(pipelinev1test.TaskRuns{C: t.TektonV1().TaskRuns(ns)}, k.CoreV1().ConfigMaps(ns), k.CoreV1().PersistentVolumeClaims(ns),
		k.CoreV1().Pods(ns), k.AuthenticationV1().TokenReviews(), ns, timeout)
}

// TestCreateOverREST checks the REST clients' creates: the request asks
// for the stored metadata only, in protobuf or JSON, and that metadata is
// read back onto what was sent.
func TestCreateOverREST(t *testing.T) {
	t.Parallel()
	stored := metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"},
		ObjectMeta: metav1.ObjectMeta{Name: "o", Namespace: "flow", UID: "u-1", ResourceVersion: "42", Generation: 1,
			CreationTimestamp: metav1.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), Labels: map[string]string{"a": "b", "added": "x"},
			Annotations: map[string]string{"c": "d"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
	}
	for _, tc := range []struct {
		name, path, contentType, carries string
		create                           func(*Client) (metav1.ObjectMeta, error)
	}{
		{
			name: "taskrun, JSON", path: "/apis/tekton.dev/v1/namespaces/flow/taskruns", contentType: runtime.ContentTypeJSON,
			carries: `"status":"TaskRunPending"`,
			create: func(c *Client) (metav1.ObjectMeta, error) {
				sent := &pipelinev1.TaskRun{ObjectMeta: objectMeta("o", "a"), Spec: pipelinev1.TaskRunSpec{Status: pipelinev1.TaskRunSpecStatusPending}}
				tr, created, err := c.CreateTaskRun(t.Context(), sent)
				if err == nil && (!created || tr.Spec.Status != pipelinev1.TaskRunSpecStatusPending || sent.UID != "") {
					t.Errorf("created %v, spec %+v, sent object changed: %q", created, tr.Spec, sent.UID)
				}
				return tr.ObjectMeta, err
			},
		},
		{
			name: "configmap, protobuf", path: "/api/v1/namespaces/flow/configmaps", contentType: runtime.ContentTypeProtobuf,
			carries: "params-value",
			create: func(c *Client) (metav1.ObjectMeta, error) {
				cm, created, err := c.CreateConfigMap(t.Context(), &corev1.ConfigMap{ObjectMeta: objectMeta("o", "a"), Data: map[string]string{"p": "params-value"}})
				if err == nil && (!created || cm.Data["p"] != "params-value") {
					t.Errorf("created %v, data %v", created, cm.Data)
				}
				return cm.ObjectMeta, err
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got *http.Request
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, body = r, must(io.ReadAll(r.Body))
				info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), tc.contentType)
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write(must(runtime.Encode(info.Serializer, &stored)))
			}))
			defer srv.Close()
			c, err := NewForConfig(&rest.Config{Host: srv.URL}, "flow", time.Second)
			if err != nil {
				t.Fatal(err)
			}
			meta, err := tc.create(c)
			if err != nil {
				t.Fatal(err)
			}
			if got.Method != http.MethodPost || got.URL.Path != tc.path || got.URL.Query().Get("fieldManager") != FieldManager {
				t.Errorf("request %s %s", got.Method, got.URL)
			}
			if got.Header.Get("Accept") != asMetadata || !strings.Contains(string(body), tc.carries) {
				t.Errorf("Accept %q, body %s: want the stored metadata asked for and the object sent", got.Header.Get("Accept"), body)
			}
			if meta.UID != "u-1" || meta.ResourceVersion != "42" || meta.Labels["added"] != "x" || meta.Annotations["c"] != "d" || meta.CreationTimestamp.IsZero() || len(meta.ManagedFields) != 0 {
				t.Errorf("stored metadata not read back (managedFields left out): %+v", meta)
			}
		})
	}
}

// A patch over REST asks for the patched object's metadata only.
func TestPatchOverREST(t *testing.T) {
	t.Parallel()
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata","metadata":{"name":"cm","uid":"u-1"}}`)
	}))
	defer srv.Close()
	c, err := NewForConfig(&rest.Config{Host: srv.URL}, "flow", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SettleConfigMap(t.Context(), &corev1.ConfigMap{ObjectMeta: objectMeta("cm", "a")}); err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPatch || got.URL.Path != "/api/v1/namespaces/flow/configmaps/cm" || got.Header.Get("Accept") != asMetadata {
		t.Errorf("request %s %s, Accept %q", got.Method, got.URL, got.Header.Get("Accept"))
	}
}

// A TaskRun the webhook refuses, in a create or a dry run, is ErrRejected
// with the webhook's words, and a dry run asks for one and stores nothing.
func TestTaskRunRefusalOverREST(t *testing.T) {
	t.Parallel()
	words := `admission webhook "validation.webhook.pipeline.tekton.dev" denied the request: non-existent variable`
	var dryRun []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dryRun = r.URL.Query()["dryRun"]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":`+strconv.Quote(words)+`,"reason":"BadRequest","code":400}`)
	}))
	defer srv.Close()
	c, err := NewForConfig(&rest.Config{Host: srv.URL}, "flow", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tr := &pipelinev1.TaskRun{ObjectMeta: objectMeta("tr", "a")}
	for name, call := range map[string]func() error{
		"create":  func() error { _, _, err := c.CreateTaskRun(t.Context(), tr); return err },
		"dry run": func() error { return c.DryRunTaskRun(t.Context(), tr) },
	} {
		if err := call(); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), words) {
			t.Errorf("%s: %v, want ErrRejected with the webhook's words", name, err)
		}
		if want := name == "dry run"; want != slices.Equal(dryRun, []string{metav1.DryRunAll}) {
			t.Errorf("%s: dryRun=%v", name, dryRun)
		}
	}
	// A webhook that cannot take a dry run gives no verdict: the create
	// itself is judged then.
	words = `admission webhook "policy.example.com" does not support dry run`
	if err := c.DryRunTaskRun(t.Context(), tr); err != nil {
		t.Errorf("dry run a webhook cannot take: %v, want no verdict", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
