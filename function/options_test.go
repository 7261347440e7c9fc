package function

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

func TestTektonOptions(t *testing.T) {
	t.Parallel()
	c := config.Config{
		Namespace: "flow", ProductPrefix: "p", Instance: "i", DefaultTimeout: 45 * time.Minute,
		ImagePullPolicy: "Always", ImagePullSecret: "reg", ServiceAccount: "sa",
		NodeSelector: map[string]string{"a": "b"}, Tolerations: []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}},
		HostAliases: []corev1.HostAlias{{IP: "10.0.0.1", Hostnames: []string{"h"}}}, DataMemory: true,
		ProxyHost: "proxy", ProxyPort: "3128", ProxyIgnore: "localhost",
		StorageClass: "fast", StorageSize: "5Gi", StorageAccessMode: "ReadWriteOnce", DeletionPolicy: "Always",
	}
	// DeletionPolicy is the sink's: the builders leave it to the TaskRun's end.
	want := tekton.Options{
		Prefix: "p", Instance: "i", Namespace: "flow", DefaultTimeout: 45 * time.Minute,
		ImagePullPolicy: corev1.PullAlways, ImagePullSecret: "reg", ServiceAccount: "sa",
		NodeSelector: c.NodeSelector, Tolerations: c.Tolerations, HostAliases: c.HostAliases, DataMemory: true,
		ProxyHost: "proxy", ProxyPort: "3128", ProxyIgnore: "localhost",
		StorageClass: "fast", StorageSize: resource.MustParse("5Gi"), StorageAccessMode: corev1.ReadWriteOnce,
	}
	if d := cmp.Diff(want, TektonOptions(c)); d != "" {
		t.Errorf("TektonOptions (-want +got):\n%s", d)
	}
	c.StorageSize = "bogus"
	if got := TektonOptions(c).StorageSize; got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("size from %q = %s, want 1Gi", c.StorageSize, got.String())
	}
}
