package main

import (
	"runtime/debug"
	"testing"
)

// TestServeSetsGOGCUnlessTheEnvironmentDoes checks the collector setting
// that docs/performance.md measures, and that an operator's GOGC wins.
func TestServeSetsGOGCUnlessTheEnvironmentDoes(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, defaultGCPercent)
	}
	tuneGC(func(k string) string {
		if k == "GOGC" {
			return "50"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=50 in the environment: GC percent changed to %d", got)
	}
}
