package clock_test

import (
	"testing"

	"github.com/stratadb/strata/clock/clocktest"
)

func TestRealConformance(t *testing.T) {
	clocktest.Run(t, clocktest.RealHarness{})
}
