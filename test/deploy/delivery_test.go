package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	"knative.dev/eventing/pkg/apis/feature"
	"knative.dev/eventing/pkg/kncloudevents"
	"sigs.k8s.io/yaml"

	"github.com/boomerang-io/flow-tekton-handler/function"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
)

// attemptFloor is the least a Broker must wait for one attempt: the
// function's bound on one event's work plus the grace it gives work in
// flight at shutdown. A shorter delivery.timeout gives up on attempts the
// function is still going to answer, and redelivers events being handled.
const attemptFloor = status.Budget + function.DrainGrace

// checkDelivery validates a Trigger's delivery as Knative's webhook does
// (default features: delivery.timeout is on) and reads it as Knative's
// dispatcher does. It returns the dispatcher's configuration and the
// longest a delivery can take before the dead letter sink: every attempt
// timing out, with every backoff between them.
func checkDelivery(spec eventingduckv1.DeliverySpec) (kncloudevents.RetryConfig, time.Duration, error) {
	ctx := feature.ToContext(context.Background(), feature.FromContextOrDefaults(context.Background()))
	if fe := spec.Validate(ctx); fe != nil {
		return kncloudevents.RetryConfig{}, 0, fe
	}
	if spec.Timeout == nil {
		return kncloudevents.RetryConfig{}, 0, errors.New("no delivery.timeout: an attempt must wait for the function's answer")
	}
	rc, err := kncloudevents.RetryConfigFromDeliverySpec(spec)
	if err != nil {
		return rc, 0, err
	}
	if rc.RequestTimeout < attemptFloor {
		return rc, 0, fmt.Errorf("delivery.timeout %s is below %s (status.Budget %s + function.DrainGrace %s)",
			rc.RequestTimeout, attemptFloor, status.Budget, function.DrainGrace)
	}
	worst := time.Duration(rc.RetryMax+1) * rc.RequestTimeout
	for i := range rc.RetryMax {
		worst += rc.Backoff(i, nil)
	}
	return rc, worst, nil
}

// TestTriggerDelivery decodes each Trigger's delivery into Knative's own
// type and checks it, and that the check catches a timeout the function's
// budget does not fit in.
func TestTriggerDelivery(t *testing.T) {
	t.Parallel()
	var specs []eventingduckv1.DeliverySpec
	for _, d := range loadBase(t) {
		if d.Kind != "Trigger" {
			continue
		}
		var tr struct {
			Spec struct {
				Delivery *eventingduckv1.DeliverySpec `json:"delivery"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(d.YAML, &tr); err != nil {
			t.Fatalf("%s: %v", d.ID(), err)
		}
		if tr.Spec.Delivery == nil {
			t.Errorf("%s has no spec.delivery", d.ID())
			continue
		}
		rc, worst, err := checkDelivery(*tr.Spec.Delivery)
		if err != nil {
			t.Errorf("%s: %v", d.ID(), err)
			continue
		}
		t.Logf("%s: %d attempts of up to %s; at worst %s before the dead letter sink", d.ID(), rc.RetryMax+1, rc.RequestTimeout, worst)
		specs = append(specs, *tr.Spec.Delivery)
	}
	if len(specs) == 0 {
		t.Fatal("config/ has no Trigger with a delivery")
	}
	for _, tc := range []struct {
		name    string
		timeout *string
	}{
		{"no timeout", nil},
		{"timeout of the function's budget alone", ptr(fmt.Sprintf("PT%dS", int(status.Budget.Seconds())))},
		{"timeout not ISO 8601", ptr("30s")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := *specs[0].DeepCopy()
			spec.Timeout = tc.timeout
			if _, _, err := checkDelivery(spec); err == nil {
				t.Errorf("delivery.timeout %v was accepted", tc.timeout)
			} else {
				t.Log(err)
			}
		})
	}
}

// TestKnativeVersion keeps the Knative Eventing the end-to-end tests deliver
// with (go.mod) at the version whose CRDs and types check the manifests.
func TestKnativeVersion(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Require {
		if r.Mod.Path == "knative.dev/eventing" {
			if r.Mod.Version != KnativeVersion {
				t.Errorf("go.mod requires knative.dev/eventing %s, the manifests are checked against %s", r.Mod.Version, KnativeVersion)
			}
			return
		}
	}
	t.Error("go.mod does not require knative.dev/eventing")
}
