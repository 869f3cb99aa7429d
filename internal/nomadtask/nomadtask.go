// Package nomadtask reads what Nomad says about the task repolock runs in,
// through the Task API (the Unix socket $NOMAD_SECRETS_DIR/api.sock), with
// the task's workload identity. It is used for one thing: the task's
// kill_timeout, so that a stop finishes before Nomad's SIGKILL.
package nomadtask

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotInNomad means repolock does not run in a Nomad task that exposes
// its Task API and workload identity (identity { file = true } or
// env = true): nothing to read.
var ErrNotInNomad = errors.New("nomadtask: not in a Nomad task with a workload identity")

// KillTimeout is the kill_timeout of this task, read from its allocation's
// job. With ACLs enabled the task's workload identity needs read-job on
// its namespace (nomad acl policy apply -job …).
func KillTimeout(ctx context.Context) (time.Duration, error) {
	secrets, alloc := os.Getenv("NOMAD_SECRETS_DIR"), os.Getenv("NOMAD_ALLOC_ID")
	token := os.Getenv("NOMAD_TOKEN")
	if b, err := os.ReadFile(filepath.Join(secrets, "nomad_token")); err == nil && secrets != "" {
		token = strings.TrimSpace(string(b))
	}
	sock := filepath.Join(secrets, "api.sock")
	if secrets == "" || alloc == "" || token == "" {
		return 0, ErrNotInNomad
	}
	if _, err := os.Stat(sock); err != nil {
		return 0, ErrNotInNomad
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://task-api/v1/allocation/"+alloc, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Nomad-Token", token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("nomadtask: Task API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("nomadtask: Task API: read allocation: %s (the workload identity needs read-job)", resp.Status)
	}
	var a struct {
		TaskGroup string
		Job       struct {
			TaskGroups []struct {
				Name  string
				Tasks []struct {
					Name        string
					KillTimeout time.Duration
				}
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return 0, fmt.Errorf("nomadtask: Task API: %w", err)
	}
	task := os.Getenv("NOMAD_TASK_NAME")
	for _, g := range a.Job.TaskGroups {
		for _, t := range g.Tasks {
			if g.Name == a.TaskGroup && t.Name == task {
				return t.KillTimeout, nil
			}
		}
	}
	return 0, fmt.Errorf("nomadtask: task %q of group %q not in its allocation's job", task, a.TaskGroup)
}
