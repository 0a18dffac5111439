package storcon

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	d := Config{}.withDefaults()
	if d.MaxConcurrentReconciles != 128 || d.MaxPriorityReconciles != 256 || d.MaxDelayedReconciles != 10_000 ||
		d.HeartbeatInterval != 5*time.Second || d.HeartbeatTimeout != time.Second || d.OfflineAfter != 30*time.Second ||
		d.WarmingUpTimeout != 300*time.Second || d.LocationConfigRetries != 3 || d.LocationConfigTimeout != 25*time.Second ||
		d.ReconcileAllInterval != 20*time.Second || d.StartupBudget != 30*time.Second || d.StartupNodeTimeout != 5*time.Second ||
		d.StartupWait != 30*time.Second || d.ComputeHookTimeout != 10*time.Second || d.ComputeHookRetries != 10 ||
		d.ComputeHookBusyWait != 5*time.Second || d.DataDir != "storcon" {
		t.Errorf("defaults %+v", d)
	}
	for name, c := range map[string]Config{
		"negative interval":      {HeartbeatInterval: -1},
		"negative slots":         {MaxConcurrentReconciles: -1},
		"negative queue":         {MaxDelayedReconciles: -5},
		"negative retries":       {LocationConfigRetries: -1},
		"timeout above interval": {HeartbeatInterval: time.Second, HeartbeatTimeout: 2 * time.Second},
		"offline before beat":    {HeartbeatInterval: 10 * time.Second, OfflineAfter: 5 * time.Second},
		"node timeout too long":  {StartupBudget: 4 * time.Second, StartupNodeTimeout: 3 * time.Second},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	// Validate does not change its receiver.
	c := Config{HeartbeatInterval: -1}
	_ = c.Validate()
	if c.HeartbeatInterval != -1 || c.DataDir != "" {
		t.Errorf("Validate changed the config: %+v", c)
	}
}
