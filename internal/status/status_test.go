package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
)

func TestCode(t *testing.T) {
	t.Parallel()
	fe := &contract.FieldError{Field: "data.id", Reason: "is required"}
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 200},
		{"chosen", New(413, "data", "too big"), 413},
		{"field error wrapped", fmt.Errorf("decode: %w", fe), 400},
		{"identity conflict", fmt.Errorf("create: %w", kube.ErrConflict), 422},
		{"apiserver refused", fmt.Errorf("create: %w", kube.ErrRejected), 422},
		{"engine refused", fmt.Errorf("start: %w", &engine.StatusError{Code: 400}), 422},
		{"engine unavailable", fmt.Errorf("start: %w", &engine.StatusError{Code: 503}), 500},
		{"anything else", errors.New("connection refused"), 500},
	}
	for _, tc := range cases {
		if got := Code(tc.err); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestResultBodyNamesTheField(t *testing.T) {
	t.Parallel()
	if Result(nil) != nil {
		t.Fatal("success must be nil")
	}
	res := Result(fmt.Errorf("decode: %w", &contract.FieldError{Field: "data.timeout", Reason: "must be a number"}))
	var r *cehttp.Result
	if !errors.As(res, &r) || r.StatusCode != http.StatusBadRequest {
		t.Fatalf("result %v", res)
	}
	var b Body
	if err := json.Unmarshal([]byte(fmt.Sprintf(r.Format, r.Args...)), &b); err != nil {
		t.Fatal(err)
	}
	if b.Field != "data.timeout" || b.Reason != "must be a number" || b.Error != "Bad Request" {
		t.Fatalf("body %+v", b)
	}
}
