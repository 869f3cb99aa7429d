package restic

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/repolock/repolock/consullock"
	"github.com/repolock/repolock/plugin"
	"github.com/repolock/repolock/plugin/internal/plugintest"
)

func TestIdentity(t *testing.T) {
	p := &Plugin{}
	for _, tc := range []struct {
		loc    string
		shared bool
		want   string
	}{
		// local
		{"/srv/restic/photos", false, "restic+local://node1/srv/restic/photos"},
		{"/srv/restic/photos/", true, "restic+local:///srv/restic/photos"},
		{"local:/srv//restic/./photos", false, "restic+local://node1/srv/restic/photos"},
		{"photos", false, "restic+local://node1/work/photos"},
		{"../photos", false, "restic+local://node1/photos"},
		{"local:photos:2024", false, "restic+local://node1/work/photos:2024"},
		{"/srv/a:b", false, "restic+local://node1/srv/a:b"},
		// sftp, absolute: no user
		{"sftp:backup@nas:/srv/restic/photos", false, "restic+sftp://nas/srv/restic/photos"},
		{"sftp:nas:/srv/restic/photos", false, "restic+sftp://nas/srv/restic/photos"},
		{"sftp://backup@NAS//srv/restic/photos/", false, "restic+sftp://nas/srv/restic/photos"},
		{"sftp://backup@nas:22//srv/restic/photos", false, "restic+sftp://nas/srv/restic/photos"},
		{"sftp://backup@nas:2222//srv/restic/photos", false, "restic+sftp://nas:2222/srv/restic/photos"},
		{"sftp://backup:s3cr3t@nas//srv/r", false, "restic+sftp://nas/srv/r"},
		{"sftp:[2001:DB8::1]:/srv/r", false, "restic+sftp://[2001:db8::1]/srv/r"},
		{"sftp://u@[2001:db8::1]:2222//srv/r", false, "restic+sftp://[2001:db8::1]:2222/srv/r"},
		// sftp, relative to the user's home: the user stays
		{"sftp:backup@nas:photos", false, "restic+sftp://nas/~backup/photos"},
		{"sftp:backup@nas:./photos/", false, "restic+sftp://nas/~backup/photos"},
		{"sftp://backup@nas/photos", false, "restic+sftp://nas/~backup/photos"},
		{"sftp:backup@nas:", false, "restic+sftp://nas/~backup"},
		{"sftp:backup@nas:../shared/r", false, "restic+sftp://nas/~backup/../shared/r"},
		{"sftp:me@corp.example@nas:r", false, "restic+sftp://nas/~me@corp.example/r"},
		// rest: credentials gone, port always written
		{"rest:https://user:s3cr3t@Host:443/photos/", false, "restic+rest://host:443/photos"},
		{"rest:https://host/photos", false, "restic+rest://host:443/photos"},
		{"rest:http://host/photos", false, "restic+rest://host:80/photos"},
		{"rest:http://host:8000/", false, "restic+rest://host:8000/"},
		{"rest:http://host:8000", false, "restic+rest://host:8000/"},
		{"rest:HTTP://host:8000//a/./b/", false, "restic+rest://host:8000/a/b"},
		// s3
		{"s3:s3.amazonaws.com/bucket/prefix", false, "restic+s3://s3.amazonaws.com/bucket/prefix"},
		{"s3:https://s3.amazonaws.com/bucket/prefix/", false, "restic+s3://s3.amazonaws.com/bucket/prefix"},
		{"s3://s3.amazonaws.com/bucket/prefix", false, "restic+s3://s3.amazonaws.com/bucket/prefix"},
		{"s3:s3.us-east-1.amazonaws.com/bucket/prefix", false, "restic+s3://s3.amazonaws.com/bucket/prefix"},
		{"s3:s3-eu-west-1.amazonaws.com/bucket/prefix", false, "restic+s3://s3.amazonaws.com/bucket/prefix"},
		{"s3:s3.dualstack.eu-west-1.amazonaws.com/bucket", false, "restic+s3://s3.amazonaws.com/bucket"},
		{"s3:bucket.s3.amazonaws.com/prefix", false, "restic+s3://s3.amazonaws.com/bucket/prefix"},
		{"s3:my.bucket.s3.eu-west-1.amazonaws.com/a/b", false, "restic+s3://s3.amazonaws.com/my.bucket/a/b"},
		{"s3:s3.cn-north-1.amazonaws.com.cn/bucket", false, "restic+s3://s3.amazonaws.com.cn/bucket"},
		{"s3:ap-1234.s3-accesspoint.us-east-1.amazonaws.com/x", false, "restic+s3://ap-1234.s3-accesspoint.us-east-1.amazonaws.com/x"},
		{"s3:http://MinIO:9000/Bucket/Prefix", false, "restic+s3://minio:9000/bucket/Prefix"},
		{"s3:http://minio/bucket", false, "restic+s3://minio/bucket"},
		{"s3:https://minio:443/bucket", false, "restic+s3://minio/bucket"},
		{"s3:minio.lan:9000/bucket//a/", false, "restic+s3://minio.lan:9000/bucket/a"},
		{"s3:https://AKIA:s3cr3t@s3.amazonaws.com/bucket/p", false, "restic+s3://s3.amazonaws.com/bucket/p"},
		// bucket stores
		{"b2:bucket:path", false, "restic+b2://bucket/path"},
		{"b2:Bucket:/path/", false, "restic+b2://bucket/path"},
		{"b2:bucket", false, "restic+b2://bucket"},
		{"gs:Bucket:/a//b", false, "restic+gs://bucket/a/b"},
		{"azure:container:/path", false, "restic+azure://container/path"},
		{"swift:Container:/Path/", false, "restic+swift://Container/Path"},
		// rclone: the leading slash is meaningful
		{"rclone:remote:path/", false, "restic+rclone:remote:path"},
		{"rclone:remote:/abs", false, "restic+rclone:remote:/abs"},
		{"rclone:remote:", false, "restic+rclone:remote:"},
		{"rclone::sftp:backups", false, "restic+rclone::sftp:backups"},
	} {
		got, err := plugin.IdentityOf(p, plugin.Repository{Name: "r", BaseDir: "/work", Location: tc.loc, Host: "Node1", SharedLocal: tc.shared})
		if err != nil || got != tc.want {
			t.Errorf("Identity(%q) = %q, %v; want %q", tc.loc, got, err, tc.want)
		}
	}
}

func TestIdentityErrors(t *testing.T) {
	p := &Plugin{}
	for _, tc := range []struct{ loc, want string }{
		{"", "empty"},
		{"sftp:nas:photos", "login user"},       // relative path, user unknown
		{"sftp://nas/photos", "login user"},     // same in URL form
		{"sftp:u@nas:~/photos", "'~'"},          // restic refuses it
		{"sftp:u@nas", "sftp:[user@]host:path"}, // no path
		{"sftp://u@nas", "no directory"},
		{"sftp:u@:/srv", "host"},
		{"sftp://u@nas:ssh//srv", "URL"}, // bad port
		{"sftp://u@nas:70000//srv", "port"},
		{"rest:ftp://host/p", "http"},
		{"rest:https://u:s3cr3t#x@host/p", "percent-encode"}, // unencoded '#' in the password
		{"rest:https://u:12#s3cr3t@host/p", "'#'"},           // "12" would pass for a port
		{"s3:", "host"},
		{"s3:host", "bucket"},
		{"s3:host/", "bucket"},
		{"s3:key:s3cr3t@host/bucket", "credentials"},
		{"s3:ftp://host/bucket", "bucket"}, // restic reads "ftp:" as the endpoint
		{"b2::path", "b2:name"},
		{"rclone:remote", "rclone:remote:path"},
		{"rclone::s3,secret_access_key=s3cr3t:b", "secrets"},
		{"sfpt:u@nas:/srv", "unknown restic backend"}, // typo
		{"./x:y", "unknown restic backend"},           // restic refuses it too
		{"~/restic", "'~'"},
	} {
		got, err := plugin.IdentityOf(p, plugin.Repository{Name: "r", BaseDir: "/work", Location: tc.loc, Host: "node1"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Identity(%q) = %q, %v; want error containing %q", tc.loc, got, err, tc.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), `restic: repository "r"`) {
			t.Errorf("Identity(%q) error %q does not name the tool and repository", tc.loc, err)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Identity(%q) error %q leaks the password", tc.loc, err)
		}
	}
	if _, err := p.Identity(plugin.Repository{Location: "/srv/r"}); err == nil {
		t.Error("a local path without Host and not shared was accepted")
	}
}

func TestModeRestic(t *testing.T) {
	// Want "" means an error: the mode cannot be inferred.
	plugintest.CheckModes(t, &Plugin{}, map[string]consullock.Mode{
		"restic backup /data":                                              consullock.Shared,
		"restic -r X --verbose backup /d":                                  consullock.Shared,
		"restic --repo=X prune":                                            consullock.Exclusive,
		"restic -r X prune":                                                consullock.Exclusive,
		"restic -rX prune":                                                 consullock.Exclusive,
		"restic --password-file F snapshots":                               consullock.Shared,
		"restic -p F forget --keep-daily 7":                                consullock.Exclusive,
		"restic -o s3.storage-class=STANDARD backup /d":                    consullock.Shared,
		"restic --option sftp.command=ssh backup /d":                       consullock.Shared,
		"restic --cache-dir /c --limit-upload 100 backup --tag nightly /d": consullock.Shared,
		"restic --limit-download 10 restore latest --target /r":            consullock.Shared,
		"restic --json -q check --read-data":                               consullock.Exclusive,
		"restic -vv backup /d":                                             consullock.Shared,
		"restic --verbose=2 backup /d":                                     consullock.Shared,
		"restic --retry-lock 5m backup /d":                                 consullock.Shared,
		"restic --pack-size 64 --compression max copy --from-repo /src":    consullock.Shared,
		"restic --no-lock ls latest":                                       consullock.Shared,
		"restic --new-global-flag value backup /d":                         consullock.Shared,
		"restic --new-bool-flag prune":                                     consullock.Exclusive,
		"/usr/local/bin/restic backup /d":                                  consullock.Shared,
		"./restic prune":                                                   consullock.Exclusive,
		"restic cat config":                                                consullock.Shared,
		"restic find foo":                                                  consullock.Shared,
		"restic dump latest /f":                                            consullock.Shared,
		"restic diff a b":                                                  consullock.Shared,
		"restic stats":                                                     consullock.Shared,
		"restic mount /mnt":                                                consullock.Shared,
		"restic list locks":                                                consullock.Shared,
		"restic version":                                                   consullock.Shared,
		"restic forget --prune --keep-last 3":                              consullock.Exclusive,
		"restic check":                                                     consullock.Exclusive,
		"restic repair index":                                              consullock.Exclusive,
		"restic repair snapshots --forget":                                 consullock.Exclusive,
		"restic repair packs abc":                                          consullock.Exclusive,
		"restic rebuild-index":                                             consullock.Exclusive,
		"restic tag --add x":                                               consullock.Exclusive,
		"restic key passwd":                                                consullock.Exclusive,
		"restic key list":                                                  consullock.Exclusive,
		"restic key add":                                                   consullock.Exclusive,
		"restic migrate upgrade_repo_v2":                                   consullock.Exclusive,
		"restic recover":                                                   consullock.Exclusive,
		"restic init":                                                      consullock.Exclusive,
		"restic unlock --remove-all":                                       consullock.Exclusive,
		"restic rewrite --exclude x":                                       consullock.Exclusive,
		"restic frobnicate":                                                consullock.Exclusive, // unknown: the safe default
		"restic -- backup /d":                                              consullock.Shared,
		"restic":                                                           "",
		"restic -r X --verbose":                                            "",
		"restic --help":                                                    "",
		"sh -c restic backup /d":                                           "",
		"restic-0.18 backup /d":                                            "",
		"nice restic backup /d":                                            "",
		"":                                                                 "",
	})
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code    int
		name    string
		success bool
	}{
		{0, plugin.NameSuccess, true},
		{1, plugin.NameError, false},
		{2, "go runtime error", false},
		{3, plugin.NameWarning, true},
		{10, plugin.NameNoRepository, false},
		{11, plugin.NameNativeLockBusy, false},
		{12, plugin.NameWrongPassword, false},
		{130, plugin.NameInterrupted, false},
		{137, "killed by signal 9", false},
		{143, "killed by signal 15", false},
		{4, plugin.NameError, false},
		{13, plugin.NameError, false},
		{128, plugin.NameError, false},
		{255, plugin.NameError, false},
		{-1, plugin.NameError, false},
	} {
		if got := (&Plugin{}).Classify(tc.code); got.Name != tc.name || got.Success != tc.success {
			t.Errorf("Classify(%d) = %+v, want {%q %v}", tc.code, got, tc.name, tc.success)
		}
	}
}

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    plugin.Repository
		want []string
	}{
		{
			"password file",
			plugin.Repository{Location: "sftp:u@nas:/srv/r", PasswordFile: "/secrets/pw"},
			[]string{"RESTIC_PASSWORD_FILE=/secrets/pw", "RESTIC_REPOSITORY=sftp:u@nas:/srv/r"},
		},
		{
			"password command, rest password kept in the env only",
			plugin.Repository{
				Location:        "rest:https://u:s3cr3t@h/p/",
				PasswordCommand: "vault kv get -field=pw secret/restic",
			},
			[]string{"RESTIC_PASSWORD_COMMAND=vault kv get -field=pw secret/restic", "RESTIC_REPOSITORY=rest:https://u:s3cr3t@h/p/"},
		},
		{
			"no password source",
			plugin.Repository{Location: "/srv/r"},
			[]string{"RESTIC_REPOSITORY=/srv/r"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&Plugin{}).Env(tc.r); !slices.Equal(got, tc.want) {
				t.Fatalf("Env = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnlockCommand(t *testing.T) {
	for policy, want := range map[string][]string{
		"":      nil,
		"never": nil,
		"stale": {"restic", "unlock"},
		"all":   {"restic", "unlock", "--remove-all"},
		"bogus": nil,
	} {
		got := (&Plugin{}).UnlockCommand(policy)
		if !slices.Equal(got, want) {
			t.Errorf("UnlockCommand(%q) = %q, want %q", policy, got, want)
		}
		for _, a := range got {
			if strings.Contains(a, "s3cr3t") || strings.Contains(a, "/pw") || strings.Contains(a, "h/p") {
				t.Errorf("UnlockCommand(%q) puts the repository or a secret in argv: %q", policy, got)
			}
		}
	}
}

// A relative path is relative to BaseDir (the config's directory), never
// to the working directory; without a BaseDir it is refused.
func TestIdentityRelativeToBaseDir(t *testing.T) {
	t.Chdir(t.TempDir())
	got, err := (&Plugin{}).Identity(plugin.Repository{Location: "repo", Host: "h", BaseDir: "/etc/repolock"})
	if want := "restic+local://h/etc/repolock/repo"; err != nil || got != want {
		t.Fatalf("Identity(repo) = %q, %v; want %q", got, err, want)
	}
	if got, err := (&Plugin{}).Identity(plugin.Repository{Location: "repo", Host: "h"}); err == nil {
		t.Fatalf("Identity(repo) without a BaseDir = %q, want an error", got)
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []plugin.Target // nil with err set: an error containing err
		err  string
	}{
		{"restic -r /x backup /d", []plugin.Target{{Location: "/x", Arg: "-r /x"}}, ""},
		{"restic --repo /x backup", []plugin.Target{{Location: "/x", Arg: "--repo /x"}}, ""},
		{"restic --repo=/x backup", []plugin.Target{{Location: "/x", Arg: "--repo=/x"}}, ""},
		{"restic -r/x backup", []plugin.Target{{Location: "/x", Arg: "-r/x"}}, ""},
		{"restic -r=/x backup", []plugin.Target{{Location: "/x", Arg: "-r=/x"}}, ""},
		{"restic -vr /x backup", []plugin.Target{{Location: "/x", Arg: "-vr /x"}}, ""},
		{"restic backup -r /x /data", []plugin.Target{{Location: "/x", Arg: "-r /x"}}, ""},
		{"restic copy --from-repo /s", []plugin.Target{{Location: "/s", Arg: "--from-repo /s", From: true}}, ""},
		{"restic copy --from-repo=/s", []plugin.Target{{Location: "/s", Arg: "--from-repo=/s", From: true}}, ""},
		{"restic -r /x copy --from-repo /s", []plugin.Target{{Location: "/x", Arg: "-r /x"}, {Location: "/s", Arg: "--from-repo /s", From: true}}, ""},
		{"restic -r /x backup", []plugin.Target{{Location: "/x", Arg: "-r /x"}}, ""},
		{"/usr/bin/restic -r /x backup", []plugin.Target{{Location: "/x", Arg: "-r /x"}}, ""},
		{"restic -r sftp:u@h:/srv/r -r /y backup", []plugin.Target{{Location: "sftp:u@h:/srv/r", Arg: "-r sftp:u@h:/srv/r"}, {Location: "/y", Arg: "-r /y"}}, ""},
		{"restic -vr=/x backup", []plugin.Target{{Location: "/x", Arg: "-vr=/x"}}, ""},
		{"restic -pr backup", nil, ""}, // "r" is -p's value (password file)
		{"restic -r -- backup", []plugin.Target{{Location: "--", Arg: "-r --"}}, ""}, // a flag's value, not the end of flags
		{"restic backup -- -r", nil, "has no value"},                                 // "--" may be a flag's value: no stop there
		{"restic --repo-x /x backup", nil, ""},                                       // not --repo
		{"restic --verbose backup", nil, ""},
		{"restic", nil, ""},
		{"restic -r", nil, "has no value"},
		{"restic --repo", nil, "has no value"},
		{"restic copy --from-repo", nil, "has no value"},
		{"restic copy --from-repository-file=f", nil, "--from-repository-file=f"},
		{"restic -r /x --repository-file f backup", nil, "--repository-file"}, // refused even beside -r
		{"restic backup -e r /data", nil, ""},
		{"restic backup --tag -- -r /x", []plugin.Target{{Location: "/x", Arg: "-r /x"}}, ""},
		{"restic backup /data", nil, ""},
		{"restic --repository-file f backup", nil, "--repository-file"},
		{"restic --repository-file=f backup", nil, "--repository-file=f"},
		{"restic copy --from-repository-file f", nil, "--from-repository-file"},
		{"restic backup -r", nil, "has no value"},
	} {
		got, err := (&Plugin{}).Targets(strings.Fields(tc.cmd))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Targets(%q) = %v, %v; want an error containing %q", tc.cmd, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Targets(%q) = %+v, %v; want %+v", tc.cmd, got, err, tc.want)
		}
	}
	for _, args := range [][]string{
		{"sh", "-c", "restic -r /x backup"},
		{"restic-0.18", "-r", "/x", "backup"},
		{"nice", "restic", "-r", "/x", "backup"},
		nil,
	} {
		if got, err := (&Plugin{}).Targets(args); !errors.Is(err, plugin.ErrOpaque) || got != nil {
			t.Errorf("Targets(%q) = %+v, %v; want ErrOpaque", args, got, err)
		}
	}
}

func TestOwnsEnv(t *testing.T) {
	for _, name := range []string{"RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE",
		"RESTIC_PASSWORD_COMMAND", "RESTIC_FROM_REPOSITORY", "RESTIC_FROM_PASSWORD_FILE",
		"RESTIC_FROM_REPOSITORY_FILE", "RESTIC_FROM_PASSWORD", "RESTIC_FROM_PASSWORD_COMMAND"} {
		if !(&Plugin{}).OwnsEnv(name) {
			t.Errorf("OwnsEnv(%s) = false", name)
		}
	}
	for _, name := range []string{"RESTIC_CACHE_DIR", "RESTIC_COMPRESSION", "AWS_ACCESS_KEY_ID", "REPOSITORY",
		"RESTIC_KEY_HINT", "RESTIC_HOST", "RESTIC_PACK_SIZE", "restic_repository", "RESTIC_", "FROM_REPOSITORY", ""} {
		if (&Plugin{}).OwnsEnv(name) {
			t.Errorf("OwnsEnv(%s) = true", name)
		}
	}
}

func TestNativeLocks(t *testing.T) {
	p := &Plugin{}
	l, err := p.ParseLock("abc", []byte(`{"time":"2026-11-29T03:00:00.123456789Z","exclusive":true,"hostname":"hostB","username":"root","pid":4242,"uid":0,"gid":0}`))
	if err != nil || l.ID != "abc" || l.Host != "hostB" || l.PID != 4242 || !l.Exclusive || l.User != "root" || l.Time.IsZero() {
		t.Fatalf("ParseLock = %+v, %v", l, err)
	}
	if _, err := p.ParseLock("abc", []byte("not json")); err == nil {
		t.Fatal("ParseLock accepted garbage")
	}
	// The listings never take a lock of their own (a read lock would be
	// refused beside the exclusive lock they describe).
	for _, argv := range [][]string{p.ListLocks(), p.ShowLock("abc")} {
		if !slices.Contains(argv, "--no-lock") {
			t.Errorf("%q runs without --no-lock", argv)
		}
	}
	got := p.FromEnv(plugin.Repository{Location: "/s", PasswordFile: "/pw"})
	if want := []string{"RESTIC_FROM_PASSWORD_FILE=/pw", "RESTIC_FROM_REPOSITORY=/s"}; !slices.Equal(got, want) {
		t.Errorf("FromEnv = %q, want %q", got, want)
	}
}

// Everything Env and FromEnv set is a variable OwnsEnv claims, so nothing
// from a job's env or repolock's own environment can override it, and the
// entries come sorted.
func TestEnvIsOwned(t *testing.T) {
	p := &Plugin{}
	for _, r := range []plugin.Repository{
		{Location: "/srv/r"},
		{Location: "/srv/r", PasswordFile: "/pw"},
		{Location: "/srv/r", PasswordCommand: "pass show r"},
		{Location: "/srv/r", PasswordFile: "/pw", PasswordCommand: "pass show r"},
	} {
		for what, env := range map[string][]string{"Env": p.Env(r), "FromEnv": p.FromEnv(r)} {
			if !slices.IsSorted(env) {
				t.Errorf("%s(%+v) = %q, not sorted", what, r, env)
			}
			for _, e := range env {
				name, _, ok := strings.Cut(e, "=")
				if !ok || !p.OwnsEnv(name) {
					t.Errorf("%s(%+v) sets %q, which OwnsEnv does not claim", what, r, e)
				}
			}
		}
	}
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    plugin.Repository
		want []string
	}{
		{"password file", plugin.Repository{Location: "/s", PasswordFile: "/pw"},
			[]string{"RESTIC_FROM_PASSWORD_FILE=/pw", "RESTIC_FROM_REPOSITORY=/s"}},
		{"password command", plugin.Repository{Location: "sftp:u@h:/s", PasswordCommand: "pass show s"},
			[]string{"RESTIC_FROM_PASSWORD_COMMAND=pass show s", "RESTIC_FROM_REPOSITORY=sftp:u@h:/s"}},
		{"no password source", plugin.Repository{Location: "/s"},
			[]string{"RESTIC_FROM_REPOSITORY=/s"}},
		{"nothing else leaks in", plugin.Repository{Name: "n", Tool: "restic", Location: "/s", LockKey: "k", UnlockNative: "all", Host: "h", BaseDir: "/etc"},
			[]string{"RESTIC_FROM_REPOSITORY=/s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&Plugin{}).FromEnv(tc.r); !slices.Equal(got, tc.want) {
				t.Fatalf("FromEnv = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseLock(t *testing.T) {
	when := time.Date(2026, 11, 29, 3, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name string
		out  string
		want plugin.NativeLock
		err  bool
	}{
		{
			"exclusive lock",
			`{"time":"2026-11-29T03:00:00.123456789Z","exclusive":true,"hostname":"hostB","username":"root","pid":4242,"uid":0,"gid":0}`,
			plugin.NativeLock{ID: "abc", Host: "hostB", User: "root", PID: 4242, Time: when, Exclusive: true},
			false,
		},
		{
			"shared lock, other fields ignored",
			"{\n  \"time\": \"2026-11-29T03:00:00.123456789Z\",\n  \"exclusive\": false,\n  \"hostname\": \"hostA\",\n  \"username\": \"backup\",\n  \"pid\": 7,\n  \"uid\": 1000,\n  \"gid\": 1000,\n  \"new_field\": [1]\n}\n",
			plugin.NativeLock{ID: "abc", Host: "hostA", User: "backup", PID: 7, Time: when},
			false,
		},
		{"empty object", `{}`, plugin.NativeLock{ID: "abc"}, false},
		{"not JSON", "not json", plugin.NativeLock{}, true},
		{"empty output", "", plugin.NativeLock{}, true},
		{"truncated", `{"time":"2026-11-29T03:00:00Z","exclusive":tr`, plugin.NativeLock{}, true},
		{"wrong type", `{"pid":"4242"}`, plugin.NativeLock{}, true},
		{"bad time", `{"time":"yesterday"}`, plugin.NativeLock{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&Plugin{}).ParseLock("abc", []byte(tc.out))
			if tc.err {
				if err == nil {
					t.Fatalf("ParseLock = %+v, want an error", got)
				}
				if !strings.Contains(err.Error(), "abc") {
					t.Errorf("ParseLock error %q does not name the lock", err)
				}
				return
			}
			if err != nil || got != tc.want || !got.Time.Equal(tc.want.Time) {
				t.Fatalf("ParseLock = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestLockListing(t *testing.T) {
	p := &Plugin{}
	if got, want := p.ListLocks(), []string{"restic", "--no-lock", "list", "locks"}; !slices.Equal(got, want) {
		t.Errorf("ListLocks() = %q, want %q", got, want)
	}
	if got, want := p.ShowLock("0123abcd"), []string{"restic", "--no-lock", "cat", "lock", "0123abcd"}; !slices.Equal(got, want) {
		t.Errorf("ShowLock() = %q, want %q", got, want)
	}
	// What repolock runs must not take the native lock it is about to
	// clear, and runs unlocked under any mode check.
	for _, args := range [][]string{p.ListLocks(), p.ShowLock("x")} {
		if m, err := p.Mode(args); err != nil || m != consullock.Shared {
			t.Errorf("Mode(%q) = %q, %v; want shared", args, m, err)
		}
		if targets, err := p.Targets(args); err != nil || targets != nil {
			t.Errorf("Targets(%q) = %+v, %v; want none (the repository comes from Env)", args, targets, err)
		}
	}
}

// restic is the one tool that reads a second repository and lists its own
// locks; the caller finds both by type assertion.
var (
	_ plugin.Plugin     = (*Plugin)(nil)
	_ plugin.Copier     = (*Plugin)(nil)
	_ plugin.LockLister = (*Plugin)(nil)
)

// Without a BaseDir every relative spelling of a local path is refused, and
// an absolute one is still fine.
func TestRelativeWithoutBaseDir(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, loc := range []string{"repo", "./repo", "../repo", "local:repo", "local:../repo"} {
		if got, err := (&Plugin{}).Identity(plugin.Repository{Location: loc, Host: "h"}); err == nil || !strings.Contains(err.Error(), "relative") {
			t.Errorf("Identity(%q) without a BaseDir = %q, %v; want an error about a relative path", loc, got, err)
		}
		if got, err := (&Plugin{}).Identity(plugin.Repository{Location: loc, Host: "h", SharedLocal: true}); err == nil {
			t.Errorf("Identity(%q, shared) without a BaseDir = %q, want an error", loc, got)
		}
	}
	if got, err := (&Plugin{}).Identity(plugin.Repository{Location: "local:/srv/r", Host: "h"}); err != nil || got != "restic+local://h/srv/r" {
		t.Errorf("Identity(local:/srv/r) without a BaseDir = %q, %v", got, err)
	}
}
