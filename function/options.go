package function

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// TektonOptions takes the builders' options from a validated Config. The
// sink's DeletionPolicy is not among them: it applies when a TaskRun ends.
func TektonOptions(c config.Config) tekton.Options {
	size, err := resource.ParseQuantity(c.StorageSize)
	if err != nil {
		size = resource.MustParse("1Gi")
	}
	return tekton.Options{
		Prefix: c.ProductPrefix, Instance: c.Instance, Namespace: c.Namespace,
		DefaultTimeout: c.DefaultTimeout, ImagePullPolicy: corev1.PullPolicy(c.ImagePullPolicy),
		ImagePullSecret: c.ImagePullSecret, ServiceAccount: c.ServiceAccount,
		NodeSelector: c.NodeSelector, Tolerations: c.Tolerations, HostAliases: c.HostAliases,
		DataMemory: c.DataMemory, ProxyHost: c.ProxyHost, ProxyPort: c.ProxyPort, ProxyIgnore: c.ProxyIgnore,
		StorageClass: c.StorageClass, StorageSize: size,
		StorageAccessMode: corev1.PersistentVolumeAccessMode(c.StorageAccessMode),
	}
}
