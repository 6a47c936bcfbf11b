package dockertest

import (
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestStartTiedSurvivesThreadChurn starts a child with StartTied, then ends
// many OS threads the way locked goroutines do: the child lives on, and is
// reaped once killed.
func TestStartTiedSurvivesThreadChurn(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	waited, err := StartTied(cmd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(done)
		}()
		<-done
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-waited:
		t.Fatalf("the child died while threads ended: %v", err)
	default:
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed child was never reaped")
	}
}
