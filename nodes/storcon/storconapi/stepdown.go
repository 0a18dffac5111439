package storconapi

import "context"

// StepDownResponse answers PUT /control/v1/step_down once the controller
// has stepped down: it no longer reconciles, answers 503 to every other
// scoped call, and every call it had under way to the store, pageservers
// or the compute hook has ended. Shards and Nodes are what it managed
// (informational: the new controller reads the pageservers itself).
type StepDownResponse struct {
	Shards int `json:"shards"`
	Nodes  int `json:"nodes"`
}

// StepDown asks the controller to step down in favour of the caller.
func (c Client) StepDown(ctx context.Context) (StepDownResponse, error) {
	return call[StepDownResponse](ctx, c, c.route(RouteStepDown), nil)
}
