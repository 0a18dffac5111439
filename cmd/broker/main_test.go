package main

import (
	"errors"
	"testing"
	"time"

	"github.com/stratadb/strata/cmd/internal/daemon"
)

func TestParseFlagsAndEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr error
		check   func(options) bool
	}{
		{"defaults", nil, nil, nil, func(o options) bool {
			return o.broker.ListenAddr == "127.0.0.1:50051" && o.broker.EntryTTL == 30*time.Second &&
				o.daemon.LogFormat == "json" && o.daemon.DrainTimeout == 5*time.Second
		}},
		{"env fallback", map[string]string{"STRATA_BROKER_LISTEN": "0.0.0.0:1", "STRATA_BROKER_ENTRY_TTL": "3s",
			"STRATA_BROKER_HTTP": ":9", "STRATA_BROKER_LOG_FORMAT": "text"}, nil, nil, func(o options) bool {
			return o.broker.ListenAddr == "0.0.0.0:1" && o.broker.EntryTTL == 3*time.Second && o.daemon.HTTPAddr == ":9" && o.daemon.LogFormat == "text"
		}},
		{"flag beats env", map[string]string{"STRATA_BROKER_ENTRY_TTL": "3s"}, []string{"-entry-ttl", "7s", "-pprof"}, nil,
			func(o options) bool { return o.broker.EntryTTL == 7*time.Second && o.daemon.Pprof }},
		{"bad env duration", map[string]string{"STRATA_BROKER_DRAIN_TIMEOUT": "soon"}, nil, daemon.ErrEnv, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, err := parse(tc.args)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(o) {
				t.Fatalf("parse(%v) = %+v, %v", tc.args, o, err)
			}
		})
	}
}
