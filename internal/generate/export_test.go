package generate

import (
	"context"

	"github.com/fastimage/api/internal/apperr"
)

// AppendEvent lets the benchmarks, in package generate_test, write events
// as the workers do.
var AppendEvent = appendEvent

// ErrLeaseLost is the cause a run's context ends with when another worker
// holds its job.
var ErrLeaseLost = errLeaseLost

// Claim, Run and Finish let the worker tests drive one worker step by step,
// as workLoop does.
func (s *Service) Claim(ctx context.Context, owner string) (*Generation, error) {
	return s.claim(ctx, owner)
}

// Run is run: it carries one claimed job to its end or leaves it to another.
func (s *Service) Run(ctx context.Context, owner string, g *Generation) { s.run(ctx, owner, g) }

// Finish is finish: it ends a job that owner still holds, and does nothing
// otherwise.
func (s *Service) Finish(ctx context.Context, owner string, g *Generation, status Status, failure *apperr.Error) {
	s.finish(ctx, owner, g, status, failure)
}
