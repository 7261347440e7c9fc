// Package function is the module's root package: func's Go builder imports it
// and serves the value New returns. The role (handler or sink) is chosen when
// the function starts; see package function/.
package function

import "github.com/boomerang-io/flow-tekton-handler/function"

// New returns the function instance func-go serves.
func New() *function.Function {
	return function.New()
}
