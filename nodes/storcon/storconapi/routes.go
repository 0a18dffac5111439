package storconapi

// The controller's routes (net.Router patterns: "METHOD /path/{param}").
const (
	// Pageserver-compatible (scope pageserverapi).
	RouteTenantCreate    = "POST /v1/tenant"
	RouteTenantDelete    = "DELETE /v1/tenant/{tenant_id}"
	RouteLocationConfig  = "PUT /v1/tenant/{tenant_shard_id}/location_config"
	RouteTimelineCreate  = "POST /v1/tenant/{tenant_id}/timeline"
	RouteTimelineDelete  = "DELETE /v1/tenant/{tenant_id}/timeline/{timeline_id}"
	RouteTenantConfigSet = "PUT /v1/tenant/config"

	// Upcalls from pageservers (scope generations_api).
	RouteReAttach = "POST /upcall/v1/re-attach"
	RouteValidate = "POST /upcall/v1/validate"

	// Operators (scope infra for register and list, admin for the rest).
	RouteNodeRegister   = "POST /control/v1/node"
	RouteNodeList       = "GET /control/v1/node"
	RouteNodeConfig     = "PUT /control/v1/node/{node_id}/config"
	RouteNodeDelete     = "DELETE /control/v1/node/{node_id}"
	RouteNodeDrain      = "PUT /control/v1/node/{node_id}/drain"
	RouteNodeDrainStop  = "DELETE /control/v1/node/{node_id}/drain"
	RouteNodeFill       = "PUT /control/v1/node/{node_id}/fill"
	RouteNodeFillStop   = "DELETE /control/v1/node/{node_id}/fill"
	RouteTenantList     = "GET /control/v1/tenant"
	RouteTenantDescribe = "GET /control/v1/tenant/{tenant_id}"
	RouteTenantPolicy   = "PUT /control/v1/tenant/{tenant_id}/policy"
	RouteShardMigrate   = "PUT /control/v1/tenant/{tenant_shard_id}/migrate"
	RouteShardSplit     = "PUT /control/v1/tenant/{tenant_id}/shard_split"
	// RouteStepDown asks a controller to hand over to the one calling it
	// (a new controller's first call at start-up).
	RouteStepDown = "PUT /control/v1/step_down"

	// Debugging (scope admin).
	RouteConsistencyCheck = "POST /debug/v1/consistency_check"
	RouteReconcileAll     = "POST /debug/v1/reconcile_all"
	RouteSchedulerDump    = "GET /debug/v1/scheduler"
	RouteTenantDump       = "GET /debug/v1/tenant"
	RouteNodeDrop         = "POST /debug/v1/node/{node_id}/drop"
	RouteTenantDrop       = "POST /debug/v1/tenant/{tenant_id}/drop"

	// Open (no token).
	RouteStatus = "GET /status"
	RouteLive   = "GET /live"
	RouteReady  = "GET /ready"
)

// Compute hook: the controller calls PUT <compute-hook-url>/notify-attach.
const NotifyAttachPath = "/notify-attach"
