// Package kube is the functions' only way to the apiserver: REST clients
// for the few kinds they read and write (a scheme of core/v1,
// authentication/v1 and tekton.dev/v1, not client-go's clientsets, which
// would link every API group in). Its calls are idempotent: creating what exists is success when the existing
// object has the same identity, and acting on what is gone is a no-op.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
)

// FieldManager names us in managedFields.
const FieldManager = "flow-tekton-handler"

// ErrConflict means an object with our deterministic name exists but belongs
// to another identity. Retrying cannot help.
var ErrConflict = errors.New("object exists with another identity")

// ErrRejected means the apiserver refused an object as invalid. Retrying the
// same object cannot help.
var ErrRejected = errors.New("object rejected by the apiserver")

// ErrGone means the object asked for no longer exists.
var ErrGone = errors.New("gone")

// ErrUnavailable means the apiserver gave no answer to act on (unreachable,
// timed out, throttled, or refused the call itself). Retrying later may
// help.
var ErrUnavailable = errors.New("apiserver unavailable")

// Client creates, patches and deletes our objects in one namespace.
type Client struct {
	taskRuns  TaskRuns
	configs   ConfigMaps
	claims    PVCs
	pods      Pods
	reviews   TokenReviews
	namespace string
	timeout   time.Duration
}

// The calls the Client makes, with the method sets of client-go's typed
// clients, so that tests can pass fake clientsets' typed clients. The
// Client uses no object a Patch returns (the REST clients return none).
type (
	TaskRuns interface {
		Get(ctx context.Context, name string, opts metav1.GetOptions) (*pipelinev1.TaskRun, error)
		Create(ctx context.Context, tr *pipelinev1.TaskRun, opts metav1.CreateOptions) (*pipelinev1.TaskRun, error)
		Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*pipelinev1.TaskRun, error)
		Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
		List(ctx context.Context, opts metav1.ListOptions) (*pipelinev1.TaskRunList, error)
		Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	}
	ConfigMaps interface {
		Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ConfigMap, error)
		Create(ctx context.Context, cm *corev1.ConfigMap, opts metav1.CreateOptions) (*corev1.ConfigMap, error)
		Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.ConfigMap, error)
		Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	}
	PVCs interface {
		Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.PersistentVolumeClaim, error)
		Create(ctx context.Context, pvc *corev1.PersistentVolumeClaim, opts metav1.CreateOptions) (*corev1.PersistentVolumeClaim, error)
		Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
		List(ctx context.Context, opts metav1.ListOptions) (*corev1.PersistentVolumeClaimList, error)
	}
	Pods interface {
		Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Pod, error)
		GetLogs(name string, opts *corev1.PodLogOptions) *rest.Request
		List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
		Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	}
	TokenReviews interface {
		Create(ctx context.Context, tr *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error)
	}
)

// New returns a Client acting in namespace, bounding each call by timeout.
func New(trs TaskRuns, cms ConfigMaps, pvcs PVCs, pods Pods, reviews TokenReviews, namespace string, timeout time.Duration) *Client {
	return &Client{taskRuns: trs, configs: cms, claims: pvcs, pods: pods, reviews: reviews, namespace: namespace, timeout: timeout}
}

// scheme holds only the kinds the Client reads and writes, the options it
// sends, and the metadata-only form (PartialObjectMetadata) its writes are
// answered with: registering these few instead of the groups' whole
// AddToScheme (dozens of kinds in core/v1) shortens the process's start.
var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
	params = runtime.NewParameterCodec(scheme)
)

func init() {
	scheme.AddKnownTypes(corev1.SchemeGroupVersion,
		&corev1.ConfigMap{}, &corev1.ConfigMapList{},
		&corev1.PersistentVolumeClaim{}, &corev1.PersistentVolumeClaimList{},
		&corev1.Pod{}, &corev1.PodList{}, &corev1.PodLogOptions{})
	metav1.AddToGroupVersion(scheme, corev1.SchemeGroupVersion)
	scheme.AddKnownTypes(authenticationv1.SchemeGroupVersion, &authenticationv1.TokenReview{})
	metav1.AddToGroupVersion(scheme, authenticationv1.SchemeGroupVersion)
	for _, add := range []func(*runtime.Scheme) error{pipelinev1.AddToScheme, metav1.AddMetaToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
}

// resource is a typed client for one resource over a RESTClient.
type resource[O any, P interface {
	*O
	runtime.Object
	metav1.ObjectMetaAccessor
}, L any, PL interface {
	*L
	runtime.Object
}] struct {
	c        rest.Interface
	ns, name string
}

func (r resource[O, P, L, PL]) Get(ctx context.Context, name string, opts metav1.GetOptions) (*O, error) {
	o := new(O)
	return o, r.c.Get().Namespace(r.ns).Resource(r.name).Name(name).VersionedParams(&opts, params).Do(ctx).Into(P(o))
}

// Create returns obj as sent (without the defaults admission gave it,
// which the Client does not read) with the metadata it was stored with.
// Only that metadata is asked for (asMetadata): the apiserver encodes, and
// the Client decodes, a few hundred bytes instead of a whole stored object
// (for a TaskRun, Tekton's defaults and managedFields too).
func (r resource[O, P, L, PL]) Create(ctx context.Context, obj *O, opts metav1.CreateOptions) (*O, error) {
	var m metav1.PartialObjectMetadata
	err := r.c.Post().Namespace(r.ns).Resource(r.name).VersionedParams(&opts, params).SetHeader("Accept", asMetadata).Body(P(obj)).Do(ctx).Into(&m)
	if err != nil {
		return nil, err
	}
	if m.UID == "" {
		return nil, fmt.Errorf("create %s %s/%s: the answer holds no stored metadata", r.name, r.ns, P(obj).GetObjectMeta().GetName())
	}
	out := *obj
	m.ManagedFields = nil
	*P(&out).GetObjectMeta().(*metav1.ObjectMeta) = m.ObjectMeta
	return &out, nil
}

// asMetadata asks the apiserver to answer with the object's metadata only,
// in protobuf or else JSON, as client-go's metadata client does. Every
// apiserver since Kubernetes 1.15 can, custom resources included.
const asMetadata = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1," +
	"application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

// Patch returns no object: the Client reads none after a patch. It asks
// for the patched object's metadata only (asMetadata), which spares the
// apiserver encoding a whole TaskRun for nothing.
func (r resource[O, P, L, PL]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (*O, error) {
	return nil, r.c.Patch(pt).Namespace(r.ns).Resource(r.name).Name(name).SubResource(sub...).VersionedParams(&opts, params).
		SetHeader("Accept", asMetadata).Body(data).Do(ctx).Error()
}

func (r resource[O, P, L, PL]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.c.Delete().Namespace(r.ns).Resource(r.name).Name(name).Body(&opts).Do(ctx).Error()
}

func (r resource[O, P, L, PL]) List(ctx context.Context, opts metav1.ListOptions) (*L, error) {
	l := new(L)
	return l, r.c.Get().Namespace(r.ns).Resource(r.name).VersionedParams(&opts, params).Do(ctx).Into(PL(l))
}

func (r resource[O, P, L, PL]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return r.c.Get().Namespace(r.ns).Resource(r.name).VersionedParams(&opts, params).Watch(ctx)
}

type pods struct {
	resource[corev1.Pod, *corev1.Pod, corev1.PodList, *corev1.PodList]
}

func (p pods) GetLogs(name string, opts *corev1.PodLogOptions) *rest.Request {
	return p.c.Get().Namespace(p.ns).Name(name).Resource(p.name).SubResource("log").VersionedParams(opts, params)
}

type reviews struct{ c rest.Interface }

func (r reviews) Create(ctx context.Context, tr *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	o := new(authenticationv1.TokenReview)
	return o, r.c.Post().Resource("tokenreviews").VersionedParams(&opts, params).Body(tr).Do(ctx).Into(o)
}

func restClient(cfg *rest.Config, hc *http.Client, gv schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion, c.APIPath = &gv, apiPath
	c.NegotiatedSerializer = codecs.WithoutConversion()
	if gv.Group != pipelinev1.SchemeGroupVersion.Group {
		// Built-in kinds speak protobuf, as client-go's typed clients do;
		// custom resources only JSON.
		c.ContentType = runtime.ContentTypeProtobuf
		c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	}
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientForConfigAndClient(c, hc)
}

// Namespace is where the Client's objects live.
func (c *Client) Namespace() string { return c.namespace }

// RESTConfig returns the in-cluster configuration, or the one in kubeconfig
// when not running in a cluster, with the given client-side rate limits.
func RESTConfig(kubeconfig string, qps float32, burst int) (*rest.Config, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		if kubeconfig == "" {
			return nil, fmt.Errorf("not in a cluster and KUBECONFIG is unset: %w", err)
		}
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
		}
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = FieldManager
	return cfg, nil
}

// NewForConfig builds the REST clients from cfg.
// The three clients share one HTTP client (one connection pool) and, with
// a positive QPS, one rate limiter.
func NewForConfig(cfg *rest.Config, namespace string, timeout time.Duration) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	core, err := restClient(cfg, hc, corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	auth, err := restClient(cfg, hc, authenticationv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	tk, err := restClient(cfg, hc, pipelinev1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, fmt.Errorf("tekton client: %w", err)
	}
	return New(
		resource[pipelinev1.TaskRun, *pipelinev1.TaskRun, pipelinev1.TaskRunList, *pipelinev1.TaskRunList]{tk, namespace, "taskruns"},
		resource[corev1.ConfigMap, *corev1.ConfigMap, corev1.ConfigMapList, *corev1.ConfigMapList]{core, namespace, "configmaps"},
		resource[corev1.PersistentVolumeClaim, *corev1.PersistentVolumeClaim, corev1.PersistentVolumeClaimList, *corev1.PersistentVolumeClaimList]{core, namespace, "persistentvolumeclaims"},
		pods{resource[corev1.Pod, *corev1.Pod, corev1.PodList, *corev1.PodList]{core, namespace, "pods"}},
		reviews{auth},
		namespace, timeout), nil
}

func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// classify wraps apiserver errors that retrying cannot fix with ErrRejected.
func classify(err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err) {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return err
}

// GetTaskRun returns the named TaskRun, or nil when it does not exist.
func (c *Client) GetTaskRun(ctx context.Context, name string) (*pipelinev1.TaskRun, error) {
	return getOrNil(ctx, c, "taskrun", name, c.taskRuns.Get)
}

// CreateTaskRun creates tr. When a TaskRun of that name exists with the same
// taskrun-ref label it is returned with created=false; another identity is
// ErrConflict.
func (c *Client) CreateTaskRun(ctx context.Context, tr *pipelinev1.TaskRun) (*pipelinev1.TaskRun, bool, error) {
	return createOrAdopt(ctx, c, "taskrun", tr, c.taskRuns.Create, c.taskRuns.Get)
}

// DryRunTaskRun asks the apiserver whether it would create tr, storing
// nothing (dryRun=All): Tekton's admission webhook validates it as it does
// a create. A refusal is ErrRejected, with the webhook's words; a TaskRun
// that exists already was admitted. A cluster that cannot dry-run TaskRuns
// (a webhook on them that declares side effects) gives no verdict: nil,
// and the create itself is judged.
func (c *Client) DryRunTaskRun(ctx context.Context, tr *pipelinev1.TaskRun) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.taskRuns.Create(ctx, tr, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager})
	if err == nil || apierrors.IsAlreadyExists(err) || (apierrors.IsBadRequest(err) && strings.Contains(err.Error(), "does not support dry run")) {
		return nil
	}
	return fmt.Errorf("dry-run create taskrun %s/%s: %w", c.namespace, tr.Name, classify(err))
}

// getOrNil reads the named object with get, bounded by the per-call
// timeout; one that does not exist is nil. kind names it in errors.
func getOrNil[O any](ctx context.Context, c *Client, kind, name string, get func(context.Context, string, metav1.GetOptions) (*O, error)) (*O, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	obj, err := get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %s/%s: %w", kind, c.namespace, name, err)
	}
	return obj, nil
}

// object is a pointer to a Kubernetes object of struct type O.
type object[O any] interface {
	*O
	metav1.Object
}

// createOrAdopt creates obj with create and reports created=true. When an
// object of its name exists it is read with get and returned with
// created=false if it has obj's identity (SameIdentity); another identity
// is ErrConflict. kind names the object in errors.
func createOrAdopt[O any, P object[O]](ctx context.Context, c *Client, kind string, obj P,
	create func(context.Context, *O, metav1.CreateOptions) (*O, error),
	get func(context.Context, string, metav1.GetOptions) (*O, error),
) (*O, bool, error) {
	cctx, cancel := c.call(ctx)
	defer cancel()
	got, err := create(cctx, obj, metav1.CreateOptions{FieldManager: FieldManager})
	if err == nil {
		return got, true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, false, fmt.Errorf("create %s %s/%s: %w", kind, c.namespace, obj.GetName(), classify(err))
	}
	existing, err := getOrNil(ctx, c, kind, obj.GetName(), get)
	if err != nil {
		return nil, false, err
	}
	if existing == nil {
		return nil, false, fmt.Errorf("create %s %s/%s: exists but then vanished", kind, c.namespace, obj.GetName())
	}
	if err := SameIdentity(P(existing).GetLabels(), obj.GetLabels()); err != nil {
		return nil, false, fmt.Errorf("create %s %s/%s: %w", kind, c.namespace, obj.GetName(), err)
	}
	return existing, false, nil
}

// SameIdentity checks that an existing object's taskrun-ref (or
// workspace-ref) label matches the wanted one, the way IsControlledBy checks
// an owner.
func SameIdentity(existing, want map[string]string) error {
	for _, key := range []string{contract.LabelTaskRunRef, contract.LabelWorkspaceRef, contract.LabelWorkspaceTyp} {
		if w, ok := want[key]; ok && existing[key] != w {
			return fmt.Errorf("%w: label %s is %q, want %q", ErrConflict, key, existing[key], w)
		}
	}
	return nil
}

// CreateConfigMap creates cm. When a ConfigMap of that name exists with the
// same taskrun-ref label it is returned with created=false; another
// identity is ErrConflict.
func (c *Client) CreateConfigMap(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, bool, error) {
	return createOrAdopt(ctx, c, "configmap", cm, c.configs.Create, c.configs.Get)
}

// GetConfigMap returns the named ConfigMap, or nil when it does not exist.
func (c *Client) GetConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	return getOrNil(ctx, c, "configmap", name, c.configs.Get)
}

// ClaimConfigMap sets the start's claim (contract.AnnotationClaimed) on a
// ConfigMap as read, to the time at. The patch carries cm's
// resourceVersion, so of several deliveries or replicas claiming one
// ConfigMap only one wins. It reports false when the ConfigMap changed since
// it was read or is gone.
func (c *Client) ClaimConfigMap(ctx context.Context, cm *corev1.ConfigMap, at time.Time) (bool, error) {
	return patchVersion(ctx, c, "configmap", cm.Name, cm.ResourceVersion, "claim", map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{contract.AnnotationClaimed: contract.ClaimValue(at)}},
	}, c.configs.Patch)
}

// ClaimReport claims the report of a finished TaskRun on its ConfigMap as
// read (contract.AnnotationReporting, the time at, with cm's
// resourceVersion as the precondition, so of several replicas only one
// wins). The same patch settles the ConfigMap: it drops the start's claim
// and sets cm's owner references (the TaskRun). It reports false when the
// ConfigMap changed since it was read or is gone.
func (c *Client) ClaimReport(ctx context.Context, cm *corev1.ConfigMap, at time.Time) (bool, error) {
	return patchVersion(ctx, c, "configmap", cm.Name, cm.ResourceVersion, "claim the report of",
		settlePatch(cm, map[string]any{contract.AnnotationReporting: contract.ClaimValue(at)}), c.configs.Patch)
}

// ClaimReportFirst claims the report of a finished TaskRun on its params
// ConfigMap without reading it: one JSON patch moves the start's claim
// (contract.AnnotationClaimed) to the report's (contract.AnnotationReporting,
// the time at) and sets want's owner references, while the ConfigMap is
// still want's task's (its taskrun-ref label). Every claim of a report
// drops the start's claim, so only one such patch can succeed. It reports
// false, changing nothing, when the ConfigMap is gone, is another task's,
// or holds no start's claim (claimed or settled already, or made without
// one): ClaimReport then decides on the ConfigMap as read.
func (c *Client) ClaimReportFirst(ctx context.Context, want *corev1.ConfigMap, at time.Time) (bool, error) {
	reporting := annotationPath(contract.AnnotationReporting)
	patch, err := json.Marshal([]jsonOp{
		{Op: "test", Path: metadataPath("labels", contract.LabelTaskRunRef), Value: want.Labels[contract.LabelTaskRunRef]},
		{Op: "move", From: annotationPath(contract.AnnotationClaimed), Path: reporting},
		{Op: "replace", Path: reporting, Value: contract.ClaimValue(at)},
		{Op: "add", Path: "/metadata/ownerReferences", Value: want.OwnerReferences},
	})
	if err != nil {
		return false, err
	}
	return c.patchConfigMap(ctx, want.Name, "claim the report of", types.JSONPatchType, patch)
}

// jsonOp is one operation of a JSON patch (RFC 6902).
type jsonOp struct {
	Op    string `json:"op"`
	From  string `json:"from,omitempty"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// settlePatch is the merge patch that drops the start's claim on cm, sets
// cm's owner references, and sets annotations (may be nil).
func settlePatch(cm *corev1.ConfigMap, annotations map[string]any) map[string]any {
	if annotations == nil {
		annotations = map[string]any{}
	}
	annotations[contract.AnnotationClaimed] = nil
	return map[string]any{"metadata": map[string]any{"annotations": annotations, "ownerReferences": cm.OwnerReferences}}
}

// SettleConfigMap settles the start's claim on a ConfigMap whose TaskRun
// needs no report: it drops the claim and sets cm's owner references (the
// TaskRun), in one patch.
func (c *Client) SettleConfigMap(ctx context.Context, cm *corev1.ConfigMap) error {
	patch, err := json.Marshal(settlePatch(cm, nil))
	if err != nil {
		return err
	}
	_, err = c.patchConfigMap(ctx, cm.Name, "settle", types.MergePatchType, patch)
	return err
}

// DropConfigMapClaim makes the claim in annotation key on the named
// ConfigMap stale (the zero time) while it still holds mine, so that the
// next delivery or sweep takes it over at once. One JSON patch, whose test
// leaves a ConfigMap claimed by someone else, settled or gone alone.
func (c *Client) DropConfigMapClaim(ctx context.Context, name, key, mine string) error {
	path := annotationPath(key)
	patch, err := json.Marshal([]jsonOp{{Op: "test", Path: path, Value: mine}, {Op: "replace", Path: path, Value: contract.ClaimValue(time.Time{})}})
	if err != nil {
		return err
	}
	_, err = c.patchConfigMap(ctx, name, "drop the claim of", types.JSONPatchType, patch)
	return err
}

// patchConfigMap sends one patch to the named ConfigMap and reports
// whether it applied. A ConfigMap that is gone, or a JSON patch whose test
// or move fails (422 on a real apiserver, 409 or 500 elsewhere), is left
// alone: not applied, and no error.
func (c *Client) patchConfigMap(ctx context.Context, name, verb string, pt types.PatchType, patch []byte) (bool, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err := c.configs.Patch(ctx, name, pt, patch, metav1.PatchOptions{FieldManager: FieldManager})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	case pt == types.JSONPatchType && (apierrors.IsInvalid(err) || apierrors.IsConflict(err) || testFailed(err)):
		return false, nil
	}
	return false, fmt.Errorf("%s configmap %s/%s: %w", verb, c.namespace, name, classify(err))
}

// testFailed reports whether err is a JSON patch whose test op failed, or
// whose move found nothing to move, as the apiserver words it.
func testFailed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "testing value") || strings.Contains(msg, "test operation") ||
		strings.Contains(msg, "does not apply") || strings.Contains(msg, "nonexistent key")
}

// annotationPath is the JSON pointer of the annotation key.
func annotationPath(key string) string { return metadataPath("annotations", key) }

// metadataPath is the JSON pointer of key in the metadata map field
// (labels, annotations).
func metadataPath(field, key string) string {
	return "/metadata/" + field + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}

// CreatePVC creates pvc and reports whether it was new; an existing claim of
// the same identity is success.
func (c *Client) CreatePVC(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (bool, error) {
	_, created, err := createOrAdopt(ctx, c, "pvc", pvc, c.claims.Create, c.claims.Get)
	return created, err
}

// ListPVCs returns the claims matching a label selector.
func (c *Client) ListPVCs(ctx context.Context, selector string) ([]corev1.PersistentVolumeClaim, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	list, err := c.claims.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list pvcs %s in %s: %w", selector, c.namespace, err)
	}
	return list.Items, nil
}

// DeletePVCs deletes the claims matching a label selector and returns how
// many it deleted. Claims already gone are not errors.
func (c *Client) DeletePVCs(ctx context.Context, selector string) (int, error) {
	pvcs, err := c.ListPVCs(ctx, selector)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pvcs {
		dctx, cancel := c.call(ctx)
		err := c.claims.Delete(dctx, p.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &p.UID},
		})
		cancel()
		switch {
		case err == nil:
			n++
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		default:
			return n, fmt.Errorf("delete pvc %s/%s: %w", c.namespace, p.Name, err)
		}
	}
	return n, nil
}

// CancelTaskRun asks Tekton to cancel the named TaskRun and marks it so the
// sink sends no end call. It reports whether there was a run to cancel: a
// missing, finished or already cancelled TaskRun is left alone, which is not
// an error (Tekton refuses any change to a finished TaskRun). The patch
// carries the resourceVersion read, so a TaskRun that finishes meanwhile is
// read again instead of patched.
func (c *Client) CancelTaskRun(ctx context.Context, name, message string) (bool, error) {
	return c.patchAsRead(ctx, name, "cancel", func(tr *pipelinev1.TaskRun) map[string]any {
		if tr.IsDone() || tr.IsCancelled() {
			return nil
		}
		return map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{contract.AnnotationCancelled: "true"}},
			"spec":     map[string]any{"status": pipelinev1.TaskRunSpecStatusCancelled, "statusMessage": message},
		}
	})
}

// ClaimTaskRun sets a claim on a TaskRun as read: the time at in the
// annotation key (contract.AnnotationClaimed for the start of a TaskRun
// created pending, contract.AnnotationReporting for the report of a
// finished one). The patch carries tr's resourceVersion, so of several
// deliveries or replicas claiming one TaskRun only one wins. It reports
// false when the TaskRun changed since it was read or is gone.
func (c *Client) ClaimTaskRun(ctx context.Context, tr *pipelinev1.TaskRun, key string, at time.Time) (bool, error) {
	return patchVersion(ctx, c, "taskrun", tr.Name, tr.ResourceVersion, "claim", map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{key: contract.ClaimValue(at)}},
	}, c.taskRuns.Patch)
}

// patchVersion merges patch into the named object with the
// resourceVersion rv as the precondition. It reports false when the object
// changed since it was read or is gone.
func patchVersion[O any](ctx context.Context, c *Client, kind, name, rv, verb string, patch map[string]any,
	send func(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*O, error)) (bool, error) {
	meta, _ := patch["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		patch["metadata"] = meta
	}
	meta["resourceVersion"] = rv
	body, err := json.Marshal(patch)
	if err != nil {
		return false, fmt.Errorf("%s %s %s/%s: %w", verb, kind, c.namespace, name, err)
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	_, err = send(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%s %s %s/%s: %w", verb, kind, c.namespace, name, classify(err))
	}
	return true, nil
}

// patchAsRead reads the named TaskRun and merges the patch change returns
// for it, with the version read; when the TaskRun changed meanwhile (Tekton
// updates it too) it is read again. change returns nil to leave the
// TaskRun alone. It reports whether a patch was applied; a missing TaskRun
// is not an error.
func (c *Client) patchAsRead(ctx context.Context, name, verb string, change func(*pipelinev1.TaskRun) map[string]any) (bool, error) {
	for {
		tr, err := c.GetTaskRun(ctx, name)
		if err != nil || tr == nil {
			return false, err
		}
		patch := change(tr)
		if patch == nil {
			return false, nil
		}
		if applied, err := patchVersion(ctx, c, "taskrun", tr.Name, tr.ResourceVersion, verb, patch, c.taskRuns.Patch); err != nil || applied {
			return applied, err
		}
	}
}

// DropClaim makes the claim in annotation key stale (the zero time) while it
// still holds mine, so that the next delivery or sweep takes it over at
// once. Other changes to the TaskRun meanwhile (Tekton's) are retried over;
// a TaskRun that is gone or claimed by someone else is left alone.
func (c *Client) DropClaim(ctx context.Context, name, key, mine string) error {
	_, err := c.patchAsRead(ctx, name, "drop the claim of", func(tr *pipelinev1.TaskRun) map[string]any {
		if tr.Annotations[key] != mine {
			return nil
		}
		return map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: contract.ClaimValue(time.Time{})}}}
	})
	return err
}

// ReleaseTaskRun lets Tekton run a TaskRun created pending: it clears
// spec.status and the claim. A TaskRun that is gone or no longer pending
// (cancelled meanwhile, say) is left alone: a cancel that lands first is
// never undone. It takes one request, a JSON patch whose test holds it to a
// TaskRun still pending; when that fails it decides on the TaskRun read.
func (c *Client) ReleaseTaskRun(ctx context.Context, name string) error {
	pctx, cancel := c.call(ctx)
	_, err := c.taskRuns.Patch(pctx, name, types.JSONPatchType, ReleasePatch(), metav1.PatchOptions{FieldManager: FieldManager})
	cancel()
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	_, err = c.patchAsRead(ctx, name, "release", func(tr *pipelinev1.TaskRun) map[string]any {
		if !tr.IsPending() {
			return nil
		}
		return map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{contract.AnnotationClaimed: nil}},
			"spec":     map[string]any{"status": nil},
		}
	})
	return err
}

// ReleasePatch is the JSON patch that releases a TaskRun still pending:
// its test fails on any other.
func ReleasePatch() []byte {
	return []byte(`[{"op":"test","path":"/spec/status","value":"` + pipelinev1.TaskRunSpecStatusPending + `"},` +
		`{"op":"remove","path":"/spec/status"},` +
		`{"op":"remove","path":"` + annotationPath(contract.AnnotationClaimed) + `"}]`)
}

// MarkReported records on the TaskRun that its report is done (value says
// how: "true", "skipped", "rejected"), with the time, drops the report's
// claim and releases our finalizer, in one patch with the version read (the
// finalizer list is replaced whole). deleteDue adds LabelDeleteDue for a
// TaskRun its deletion policy deletes. A missing TaskRun is no error.
func (c *Client) MarkReported(ctx context.Context, name, value string, deleteDue bool, at time.Time) error {
	_, err := c.patchAsRead(ctx, name, "mark reported", func(tr *pipelinev1.TaskRun) map[string]any {
		labels := map[string]string{contract.LabelReported: value}
		if deleteDue {
			labels[contract.LabelDeleteDue] = "true"
		}
		meta := map[string]any{
			"labels":      labels,
			"annotations": map[string]any{contract.AnnotationReported: at.UTC().Format(time.RFC3339), contract.AnnotationReporting: nil},
		}
		if slices.Contains(tr.Finalizers, contract.FinalizerReport) {
			meta["finalizers"] = slices.DeleteFunc(slices.Clone(tr.Finalizers), func(f string) bool { return f == contract.FinalizerReport })
		}
		return map[string]any{"metadata": meta}
	})
	return err
}

// DeleteTaskRun deletes the named TaskRun in the background; its ConfigMap
// goes with it by owner reference. A missing TaskRun is not an error.
func (c *Client) DeleteTaskRun(ctx context.Context, name string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	policy := metav1.DeletePropagationBackground
	err := c.taskRuns.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete taskrun %s/%s: %w", c.namespace, name, err)
	}
	return nil
}

// ListTaskRuns returns every TaskRun matching a label selector, reading it in
// pages of pageSize.
func (c *Client) ListTaskRuns(ctx context.Context, selector string, pageSize int64) ([]pipelinev1.TaskRun, error) {
	var out []pipelinev1.TaskRun
	opts := metav1.ListOptions{LabelSelector: selector, Limit: pageSize}
	for {
		cctx, cancel := c.call(ctx)
		list, err := c.taskRuns.List(cctx, opts)
		cancel()
		if err != nil {
			return out, fmt.Errorf("list taskruns %s in %s: %w", selector, c.namespace, err)
		}
		out = append(out, list.Items...)
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

// DeleteConfigMap deletes the named ConfigMap. A missing one is not an
// error. Owner references make the garbage collector do the same; deleting
// explicitly frees it at once.
func (c *Client) DeleteConfigMap(ctx context.Context, name string) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	err := c.configs.Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete configmap %s/%s: %w", c.namespace, name, err)
	}
	return nil
}

// GetPVC returns the named claim, or nil when it does not exist. A read by
// name goes to etcd directly, unlike a consistent list, which waits for the
// apiserver's watch cache to catch up.
func (c *Client) GetPVC(ctx context.Context, name string) (*corev1.PersistentVolumeClaim, error) {
	return getOrNil(ctx, c, "pvc", name, c.claims.Get)
}

// GetPod returns the named pod, or nil when it does not exist.
func (c *Client) GetPod(ctx context.Context, name string) (*corev1.Pod, error) {
	return getOrNil(ctx, c, "pod", name, c.pods.Get)
}

// FollowLog opens the log of a container of the named pod (pods/log with
// follow): the body streams what the container writes until it ends. Only
// ctx bounds it, not the per-call timeout. A pod or container that is gone
// is ErrGone.
func (c *Client) FollowLog(ctx context.Context, pod, container string) (io.ReadCloser, error) {
	rc, err := c.pods.GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("log of %s/%s %s: %w", c.namespace, pod, container, ErrGone)
	}
	if err != nil {
		return nil, fmt.Errorf("log of %s/%s %s: %w", c.namespace, pod, container, err)
	}
	return rc, nil
}

// ReviewToken asks the apiserver who a bearer token belongs to, for the
// given audiences (a TokenReview; RBAC: create tokenreviews, which the
// ClusterRole system:auth-delegator grants). A token the apiserver does not
// accept is a status with Authenticated false, not an error; every error is
// ErrUnavailable.
func (c *Client) ReviewToken(ctx context.Context, token string, audiences []string) (authenticationv1.TokenReviewStatus, error) {
	ctx, cancel := c.call(ctx)
	defer cancel()
	r, err := c.reviews.Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.TokenReviewStatus{}, fmt.Errorf("create tokenreview: %w: %w", ErrUnavailable, err)
	}
	return r.Status, nil
}
