package resp

import (
	"fmt"
	"io"
)

// WriteMetrics writes the engine's counters in the Prometheus text
// format: per command calls, errors and time, and the connections.
func (e *Engine) WriteMetrics(w io.Writer) {
	name := func(i int) string {
		if i < len(commandList) {
			return commandList[i].name
		}
		return "unknown"
	}
	s := &e.stats
	fmt.Fprintln(w, "# HELP hanode_redis_commands_total Redis-protocol commands run, by command.")
	fmt.Fprintln(w, "# TYPE hanode_redis_commands_total counter")
	for i := range s.calls {
		if n := s.calls[i].Load(); n > 0 {
			fmt.Fprintf(w, "hanode_redis_commands_total{command=%q} %d\n", name(i), n)
		}
	}
	fmt.Fprintln(w, "# HELP hanode_redis_command_errors_total Redis-protocol commands answered with an error, by command.")
	fmt.Fprintln(w, "# TYPE hanode_redis_command_errors_total counter")
	for i := range s.errors {
		if n := s.errors[i].Load(); n > 0 {
			fmt.Fprintf(w, "hanode_redis_command_errors_total{command=%q} %d\n", name(i), n)
		}
	}
	fmt.Fprintln(w, "# HELP hanode_redis_command_seconds_total Time spent running Redis-protocol commands, by command.")
	fmt.Fprintln(w, "# TYPE hanode_redis_command_seconds_total counter")
	for i := range s.nanos {
		if n := s.nanos[i].Load(); n > 0 {
			fmt.Fprintf(w, "hanode_redis_command_seconds_total{command=%q} %g\n", name(i), float64(n)/1e9)
		}
	}
	gauge := func(n, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", n, help, n, n, v)
	}
	counter := func(n, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", n, help, n, n, v)
	}
	gauge("hanode_redis_connections", "Open Redis-protocol connections.", s.conns.Load())
	counter("hanode_redis_connections_accepted_total", "Redis-protocol connections accepted.", s.accepted.Load())
	counter("hanode_redis_connections_refused_total", "Redis-protocol connections refused over the connection limit.", s.refused.Load())
	counter("hanode_redis_connections_idle_closed_total", "Redis-protocol connections closed after the idle timeout.", s.idleClosed.Load())
	counter("hanode_redis_protocol_errors_total", "Redis-protocol connections closed for a malformed or oversized request.", s.protoErrors.Load())
	counter("hanode_redis_loading_refused_total", "Redis-protocol commands answered LOADING: the store did not hold the cluster's sessions yet.", s.loading.Load())
	counter("hanode_redis_commit_errors_total", "Redis-protocol writes that failed or were not acknowledged as the consistency asked.", s.commitErrors.Load())
}
