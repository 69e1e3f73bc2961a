package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"
)

// Long operations (a joining node's state transfer, a drain) are followed
// by polling the admin API's /status and printing a line whenever the
// progress changes.

var waitFlags = []cli.Flag{
	&cli.BoolFlag{Name: "wait", Usage: "follow the operation, printing its progress, until it is done"},
	&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up waiting after this long"},
	&cli.DurationFlag{Name: "poll", Value: 500 * time.Millisecond, Usage: "how often to ask the node"},
}

// nodeStatus is the part of GET /status that progress reports use.
type nodeStatus struct {
	Node             string `json:"node"`
	Ready            bool   `json:"ready"`
	Phase            string `json:"phase"`
	Sessions         int    `json:"sessions"`
	TransferReceived int64  `json:"transfer_received"`
	TransferTotal    int64  `json:"transfer_total"`
	PendingDeltas    int    `json:"pending_deltas"`
	InFlight         int64  `json:"in_flight"`
	NotReadyReason   string `json:"not_ready_reason"`
}

// follow polls /status until done reports true, printing line(st) when it
// differs from the previous one.
func follow(c *cli.Context, w io.Writer, done func(nodeStatus) bool, line func(nodeStatus) string) error {
	deadline := time.Now().Add(c.Duration("timeout"))
	last := ""
	for {
		body, err := clientRequest(c, http.MethodGet, "/status")
		if err != nil {
			return err
		}
		var st nodeStatus
		if err := json.Unmarshal(body, &st); err != nil {
			return fmt.Errorf("GET /status: %w", err)
		}
		if l := line(st); l != last {
			fmt.Fprintf(w, "%s  %s\n", time.Now().Format("15:04:05"), l)
			last = l
		}
		if done(st) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s: %s", c.Duration("timeout"), last)
		}
		select {
		case <-c.Context.Done():
			return c.Context.Err()
		case <-time.After(c.Duration("poll")):
		}
	}
}

// joinProgress describes a node on its way to readiness.
func joinProgress(st nodeStatus) string {
	switch {
	case st.Phase == "transferring" && st.TransferTotal > 0:
		return fmt.Sprintf("%s: receiving the cluster's sessions: %d/%d (%d%%)", st.Node,
			st.TransferReceived, st.TransferTotal, 100*st.TransferReceived/st.TransferTotal)
	case st.Phase == "transferring":
		return fmt.Sprintf("%s: receiving the cluster's sessions", st.Node)
	case st.Ready:
		return fmt.Sprintf("%s: ready, holding %d sessions", st.Node, st.Sessions)
	case st.NotReadyReason != "":
		return fmt.Sprintf("%s: not ready: %s", st.Node, st.NotReadyReason)
	}
	return fmt.Sprintf("%s: %s", st.Node, st.Phase)
}

// drainProgress describes a draining node.
func drainProgress(st nodeStatus) string {
	if drained(st) {
		return fmt.Sprintf("%s: drained: no request in flight, every delta handed to the network; it can be stopped", st.Node)
	}
	return fmt.Sprintf("%s: draining: %d requests in flight, %d deltas pending", st.Node, st.InFlight, st.PendingDeltas)
}

func drained(st nodeStatus) bool {
	return st.Phase == "draining" && st.InFlight == 0 && st.PendingDeltas == 0
}

func statusAction(stdout io.Writer) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.Bool("wait") {
			return follow(c, stdout, func(st nodeStatus) bool { return st.Ready }, joinProgress)
		}
		return clientGet(c, stdout, "/status", printStatus)
	}
}

func drainAction(stdout io.Writer) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := clientDo(c, stdout, "POST", "/drain"); err != nil {
			return err
		}
		if !c.Bool("wait") {
			return nil
		}
		return follow(c, stdout, drained, drainProgress)
	}
}
