package pageapi

import "github.com/stratadb/strata/net"

// ResponseStatus maps the code of a failed GetPage request to what the
// GetPages stream does with it. A request's own failure travels inside its
// GetPageResponse, because the stream is shared by many callers and a gRPC
// status would end it for all of them; failures that say the stream itself
// (or the server, or the caller's rights) is the problem end the stream.
//
//	NotFound                                       -> NOT_FOUND
//	InvalidArgument, FailedPrecondition, OutOfRange -> INVALID_REQUEST
//	Internal, DataLoss (and anything unlisted)      -> INTERNAL_ERROR
//	ResourceExhausted                              -> SLOW_DOWN
//	Unavailable, Canceled, DeadlineExceeded,
//	Aborted, PermissionDenied, Unauthenticated     -> end the stream
func ResponseStatus(c net.Code) (code GetPageStatusCode, endsStream bool) {
	switch c {
	case net.OK:
		return GetPageStatusCode_GET_PAGE_STATUS_CODE_OK, false
	case net.NotFound:
		return GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND, false
	case net.InvalidArgument, net.FailedPrecondition, net.OutOfRange:
		return GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST, false
	case net.ResourceExhausted:
		return GetPageStatusCode_GET_PAGE_STATUS_CODE_SLOW_DOWN, false
	case net.Unavailable, net.Canceled, net.DeadlineExceeded, net.Aborted, net.PermissionDenied, net.Unauthenticated:
		return GetPageStatusCode_GET_PAGE_STATUS_CODE_UNKNOWN, true
	default:
		return GetPageStatusCode_GET_PAGE_STATUS_CODE_INTERNAL_ERROR, false
	}
}

// CodeOfResponse maps a response status back to the net.Code a client
// reports for it (the inverse of ResponseStatus on its in-band codes; an
// UNKNOWN status is a protocol violation and reads as Internal).
func CodeOfResponse(s GetPageStatusCode) net.Code {
	switch s {
	case GetPageStatusCode_GET_PAGE_STATUS_CODE_OK:
		return net.OK
	case GetPageStatusCode_GET_PAGE_STATUS_CODE_NOT_FOUND:
		return net.NotFound
	case GetPageStatusCode_GET_PAGE_STATUS_CODE_INVALID_REQUEST:
		return net.InvalidArgument
	case GetPageStatusCode_GET_PAGE_STATUS_CODE_SLOW_DOWN:
		return net.ResourceExhausted
	default:
		return net.Internal
	}
}
