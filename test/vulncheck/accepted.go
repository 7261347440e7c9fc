package vulncheck

// Accepted are the vulnerabilities govulncheck finds called in this module
// that do not apply to it, each with the reason. Check fails on any other
// called vulnerability, and on an entry here that is no longer found.
var Accepted = map[string]string{
	// CVE-2023-37264, GHSA-w2h3-vvvq-3m53; unreviewed entry with no fixed
	// version, so it names the whole module rather than any function and
	// every use of Tekton's API types (now by tests and test programs only)
	// "calls" it.
	"GO-2023-1901": "Tekton's PipelineRun reconciler does not validate the UIDs of its child runs. " +
		"That is Tekton's controller; the functions link no Tekton package (internal/pipelinev1 mirrors the API types), " +
		"only tests and test programs import Tekton's API types and client, and all create TaskRuns, never PipelineRuns. " +
		"github.com/tektoncd/pipeline is a fixed dependency (v1.15.0).",
}
