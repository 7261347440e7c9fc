package cluster

// Versions of everything the control plane is built from. They are the only
// place versions live: the build cache key is derived from them, so changing
// one rebuilds (mostly relinks, with a warm Go build cache).
const (
	// etcdVersion is the go.etcd.io/etcd/server/v3 module version.
	etcdVersion = "v3.7.0"
	// kubernetesVersion is the k8s.io/kubernetes module version (kube-apiserver,
	// kube-scheduler, kubectl) and the version the binaries report.
	kubernetesVersion = "v1.37.2"
	// stagingVersion is the version every k8s.io staging module that
	// k8s.io/kubernetes requires at v0.0.0 is pinned to.
	stagingVersion = "v0.37.2"
	// kwokVersion is the sigs.k8s.io/kwok module version.
	kwokVersion = "v0.8.0"
	// tektonVersion is the github.com/tektoncd/pipeline module version; it must
	// match the one in the repository's go.mod (a unit test checks).
	tektonVersion = "v1.15.0"
)

// Go language versions of the throwaway build modules. They are part of what
// the Go build cache sees, so keep them stable to keep rebuilds cheap.
const (
	etcdGoLine   = "1.26"
	k8sGoLine    = "1.26.0"
	tektonGoLine = "1.26.4"
)
