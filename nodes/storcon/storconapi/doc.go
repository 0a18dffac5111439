// Package storconapi is the storage controller's API as its clients see it:
// the route patterns, the request and response bodies, the upcalls a
// pageserver makes (re-attach, validate), the compute hook's notification,
// and Client, a typed client over any net.HTTPClient (the seam in the
// simulator, real HTTP in the daemons and `strata ctl`).
//
// Shapes follow Neon's storage controller (docs/storage-controller.md, API):
// a client written for Neon's controller finds the same routes, field names
// and status codes. The controller itself (nodes/storcon) and the pageserver
// import only this package from each other.
//
// Route families and the JWT scope each needs (a token with scope admin
// passes every check; /metrics, /status, /live and /ready are open):
//
//   - /v1/…            pageserver-compatible tenant and timeline calls: pageserverapi
//   - /upcall/v1/…     re-attach and validate: generations_api
//   - /control/v1/node register and list: infra; every other /control/v1/… call: admin
//   - /debug/v1/…      admin
package storconapi
