package pageapi

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
)

func TestTargetRoundTrip(t *testing.T) {
	tid, _ := shard.ParseTenantID("0123456789abcdef0123456789abcdef")
	tl, _ := shard.ParseTimelineID("fedcba9876543210fedcba9876543210")
	for _, idx := range []shard.ShardIndex{{}, {Number: 1, Count: 2}, {Number: 13, Count: 17}} {
		want := Target{Shard: shard.TenantShardID{TenantID: tid, Shard: idx}, Timeline: tl}
		ctx := WithTarget(context.Background(), want, "tok")
		md := net.OutgoingMetadata(ctx)
		if err := md.Validate(); err != nil {
			t.Fatal(err)
		}
		if md[HeaderAuthorization] != "Bearer tok" {
			t.Errorf("authorization = %q", md[HeaderAuthorization])
		}
		got, err := ParseTarget(md)
		if err != nil || got != want {
			t.Errorf("ParseTarget = %v, %v; want %v", got, err, want)
		}
	}
}

func TestParseTargetRejects(t *testing.T) {
	good := net.Metadata{HeaderTenantID: "0123456789abcdef0123456789abcdef", HeaderTimelineID: "fedcba9876543210fedcba9876543210", HeaderShardID: "0000"}
	cases := []struct{ key, value, want string }{
		{HeaderTenantID, "", "missing neon-tenant-id"},
		{HeaderTimelineID, "", "missing neon-timeline-id"},
		{HeaderShardID, "", "missing neon-shard-id"},
		{HeaderTenantID, "xyz", HeaderTenantID},
		{HeaderTimelineID, strings.Repeat("g", 32), HeaderTimelineID},
		{HeaderShardID, "0201", HeaderShardID},
		{HeaderShardID, "00000", HeaderShardID},
	}
	for _, tc := range cases {
		md := good.Clone()
		if tc.value == "" {
			delete(md, tc.key)
		} else {
			md[tc.key] = tc.value
		}
		_, err := ParseTarget(md)
		if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want ErrBadHeader naming %q", tc.key, tc.value, err, tc.want)
		}
	}
}

func TestResponseStatus(t *testing.T) {
	for c := net.OK; c <= net.Unauthenticated; c++ {
		s, ends := ResponseStatus(c)
		switch c {
		case net.Unavailable, net.Canceled, net.DeadlineExceeded, net.Aborted, net.PermissionDenied, net.Unauthenticated:
			if !ends {
				t.Errorf("%v must end the stream", c)
			}
			continue
		}
		if ends {
			t.Errorf("%v must travel in the response, not end the stream", c)
		}
		back := CodeOfResponse(s)
		want := c
		switch c {
		case net.FailedPrecondition, net.OutOfRange:
			want = net.InvalidArgument
		case net.NotFound, net.InvalidArgument, net.ResourceExhausted, net.OK:
		default:
			want = net.Internal
		}
		if back != want {
			t.Errorf("%v -> %v -> %v, want %v", c, s, back, want)
		}
	}
}
