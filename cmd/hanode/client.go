package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

// adminURL turns the admin listen address into a URL a client can dial:
// an unspecified host (":9090", "0.0.0.0:9090") means this host.
func adminURL(admin string) string {
	if strings.HasPrefix(admin, "http://") || strings.HasPrefix(admin, "https://") {
		return strings.TrimRight(admin, "/")
	}
	host, port, err := net.SplitHostPort(admin)
	if err != nil {
		return "http://" + admin
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func pathEscape(s string) string { return url.PathEscape(s) }

func clientRequest(c *cli.Context, method, path string) ([]byte, error) {
	cfg, err := configFromCLI(c)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(c.Context, method, adminURL(cfg.Admin)+path, nil)
	if err != nil {
		return nil, err
	}
	if cfg.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API of the node: %w (is hanode running, and is --admin right?)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func clientGet(c *cli.Context, w io.Writer, path string, print func(io.Writer, []byte) error) error {
	body, err := clientRequest(c, http.MethodGet, path)
	if err != nil {
		return err
	}
	if c.Bool("json") || print == nil {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = append(buf.Bytes(), '\n')
		}
		_, err = w.Write(body)
		return err
	}
	return print(w, body)
}

func clientDo(c *cli.Context, w io.Writer, method, path string) error {
	body, err := clientRequest(c, method, path)
	if err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

func printStatus(w io.Writer, body []byte) error {
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, k := range []string{"node", "version", "ha", "ready", "not_ready_reason", "draining", "consistency", "replication", "sessions", "members", "view_id", "uptime"} {
		if v, ok := st[k]; ok {
			fmt.Fprintf(tw, "%s:\t%v\n", k, v)
		}
	}
	return tw.Flush()
}

func printMembers(w io.Writer, body []byte) error {
	var ms []memberJSON
	if err := json.Unmarshal(body, &ms); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tREADY\tADDR\tSELF\tLAST SEEN")
	for _, m := range ms {
		seen := "-"
		if !m.LastSeen.IsZero() {
			seen = m.LastSeen.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%v\t%s\n", m.Name, m.State, m.Ready, m.Addr, m.Self, seen)
	}
	return tw.Flush()
}

func printSessions(w io.Writer, body []byte) error {
	var ss sessionList
	if err := json.Unmarshal(body, &ss); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HASH\tID\tOWNER\tATTRS\tLAST ACCESS")
	for _, s := range ss.Sessions {
		id := s.ID
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Hash, id, s.Owner, s.Attrs, s.LastAccess.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "%d sessions\n", ss.Count)
	return tw.Flush()
}
