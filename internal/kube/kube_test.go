package kube

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

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
			c := New(k, tektonfake.NewSimpleClientset(), "flow", time.Second)
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
