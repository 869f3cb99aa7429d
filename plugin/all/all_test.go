package all_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/repolock/repolock/plugin"
	_ "github.com/repolock/repolock/plugin/all"
)

func TestTools(t *testing.T) {
	if got, want := plugin.Tools(), []string{"borg", "exec", "restic"}; !slices.Equal(got, want) {
		t.Fatalf("Tools() = %q, want %q", got, want)
	}
	for _, tool := range plugin.Tools() {
		p, err := plugin.Get(tool)
		if err != nil || p.Name() != tool {
			t.Errorf("Get(%q) = %v, %v", tool, p, err)
		}
	}
	_, err := plugin.Get("rsync")
	if err == nil || !strings.Contains(err.Error(), "borg, exec, restic") {
		t.Fatalf("Get(rsync) error = %v, want it to list the known tools", err)
	}
}

// repo is a repository as a pair side: tool, location, and the host the
// config is loaded on.
type repo struct {
	tool, loc, host string
	shared          bool
}

func (r repo) repository() plugin.Repository {
	return plugin.Repository{Name: "r", Tool: r.tool, Location: r.loc, Host: r.host, SharedLocal: r.shared}
}

func rs(loc string) repo { return repo{tool: "restic", loc: loc, host: "node1"} }
func bg(loc string) repo { return repo{tool: "borg", loc: loc, host: "node1"} }

// TestIdentityPairs checks that two spellings of one repository share one
// lock and that different repositories do not. Both the identity and the
// derived lock key are compared.
func TestIdentityPairs(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)

	for _, tc := range []struct {
		name string
		a, b repo
		same bool
	}{
		// restic sftp
		{"sftp short vs URL form", rs("sftp:u@h:/srv/r"), rs("sftp://u@h//srv/r"), true},
		{"sftp default port and trailing slash", rs("sftp:u@h:/srv/r"), rs("sftp://u@h:22//srv/r/"), true},
		{"sftp absolute: user and host case do not matter", rs("sftp:u@h:/srv/r"), rs("sftp:other@H:/srv/r"), true},
		{"sftp absolute without user", rs("sftp:u@h:/srv/r"), rs("sftp:h:/srv/r"), true},
		{"sftp relative: short vs URL form", rs("sftp:u@h:r"), rs("sftp://u@h/r"), true},
		{"sftp relative: ./ and trailing slash", rs("sftp:u@h:r"), rs("sftp:u@h:./r/"), true},
		{"sftp path cleaning", rs("sftp:u@h:/srv//r/./x/.."), rs("sftp:u@h:/srv/r"), true},
		{"sftp relative: different users", rs("sftp:u@h:r"), rs("sftp:v@h:r"), false},
		{"sftp relative vs absolute", rs("sftp:u@h:r"), rs("sftp:u@h:/r"), false},
		{"sftp different ports", rs("sftp://u@h:2222//srv/r"), rs("sftp://u@h//srv/r"), false},
		{"sftp different hosts", rs("sftp:u@h1:/srv/r"), rs("sftp:u@h2:/srv/r"), false},
		{"sftp paths are case-sensitive", rs("sftp:u@h:/srv/R"), rs("sftp:u@h:/srv/r"), false},
		// restic rest
		{"rest credentials and default port", rs("rest:https://user:s3cr3t@Host:443/p/"), rs("rest:https://host/p"), true},
		{"rest http default port", rs("rest:http://h:80/p"), rs("rest:http://h/p"), true},
		{"rest different users, same server", rs("rest:https://alice:x@h/p"), rs("rest:https://bob:y@h/p"), true},
		{"rest http vs https", rs("rest:http://h/p"), rs("rest:https://h/p"), false},
		{"rest paths are case-sensitive", rs("rest:https://h/p"), rs("rest:https://h/P"), false},
		// restic s3
		{"s3 endpoint vs URL form", rs("s3:s3.amazonaws.com/bucket/prefix"), rs("s3:https://s3.amazonaws.com/bucket/prefix"), true},
		{"s3 regional AWS endpoint", rs("s3:s3.amazonaws.com/bucket/prefix"), rs("s3:s3.us-east-1.amazonaws.com/bucket/prefix"), true},
		{"s3 virtual-hosted AWS", rs("s3:s3.amazonaws.com/bucket/prefix"), rs("s3:bucket.s3.eu-west-1.amazonaws.com/prefix"), true},
		{"s3 http and https of one service", rs("s3:http://minio:9000/b/p"), rs("s3:https://MINIO:9000/b/p/"), true},
		{"s3 different prefixes", rs("s3:s3.amazonaws.com/b/p"), rs("s3:s3.amazonaws.com/b/q"), false},
		{"s3 different ports", rs("s3:http://minio:9000/b"), rs("s3:http://minio:9001/b"), false},
		{"s3 AWS China is another namespace", rs("s3:s3.amazonaws.com/b"), rs("s3:s3.cn-north-1.amazonaws.com.cn/b"), false},
		// restic b2
		{"b2 leading and trailing slash", rs("b2:bucket:path"), rs("b2:bucket:/path/"), true},
		{"b2 bucket case", rs("b2:Bucket:path"), rs("b2:bucket:path"), true},
		{"b2 different prefixes", rs("b2:bucket:a"), rs("b2:bucket:b"), false},
		// restic local
		{"local relative vs absolute", rs("restic"), rs(wd + "/restic"), true},
		{"local: prefix and trailing slash", rs("/srv/restic"), rs("local:/srv/restic/"), true},
		{"local host name case", repo{"restic", "/srv/restic", "nas", false}, repo{"restic", "/srv/restic", "NAS.", false}, true},
		{"local paths on different hosts", repo{"restic", "/srv/restic", "a", false}, repo{"restic", "/srv/restic", "b", false}, false},
		{"shared local paths on different hosts", repo{"restic", "/mnt/nfs/r", "a", true}, repo{"restic", "/mnt/nfs/r", "b", true}, true},
		{"local paths are case-sensitive", rs("/srv/Restic"), rs("/srv/restic"), false},
		// borg
		{"borg scp vs URL form", bg("u@h:/abs"), bg("ssh://u@h/abs"), true},
		{"borg default port, user, host case", bg("ssh://u@h:22/abs"), bg("ssh://other@H/abs/"), true},
		{"borg relative: scp vs /./", bg("u@h:rel"), bg("ssh://u@h/./rel"), true},
		{"borg relative: scp vs /~/", bg("u@h:rel"), bg("ssh://u@h/~/rel"), true},
		{"borg relative vs the user's named home", bg("u@h:rel"), bg("v@h:~u/rel"), true},
		{"borg ~/ vs URL ~user", bg("u@h:~/rel"), bg("ssh://w@h/~u/rel"), true},
		{"borg file URL vs path", bg("file:///srv/borg"), bg("/srv/borg"), true},
		{"borg path cleaning", bg("/srv/borg/"), bg("/srv/./borg"), true},
		{"borg IPv6 spellings", bg("ssh://u@[::1]:22/x"), bg("u@[0:0::1]:/x"), true},
		{"borg local relative vs absolute", bg("borg"), bg(wd + "/borg"), true},
		{"borg relative: different users", bg("u@h:rel"), bg("v@h:rel"), false},
		{"borg relative vs absolute", bg("u@h:rel"), bg("u@h:/rel"), false},
		{"borg different ports", bg("ssh://u@h:2222/abs"), bg("ssh://u@h/abs"), false},
		{"borg different hosts", bg("u@h1:/abs"), bg("u@h2:/abs"), false},
		{"borg paths are case-sensitive", bg("u@h:/Abs"), bg("u@h:/abs"), false},
		{"borg named home vs login home", bg("u@h:~v/rel"), bg("u@h:rel"), false},
		// Documented limitation: home directories are not resolved.
		{"borg home-relative vs its absolute path", bg("u@h:rel"), bg("u@h:/home/u/rel"), false},
		// tools never collide
		{"restic vs borg over sftp/ssh", rs("sftp:u@h:/srv/r"), bg("u@h:/srv/r"), false},
		{"restic vs borg local", rs("/srv/r"), bg("/srv/r"), false},
		{"restic vs exec local", rs("/srv/r"), repo{"exec", "/srv/r", "node1", false}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ida, ka := identityAndKey(t, tc.a)
			idb, kb := identityAndKey(t, tc.b)
			if (ida == idb) != tc.same {
				t.Errorf("identities %q (%s) and %q (%s): same = %v, want %v", ida, tc.a.loc, idb, tc.b.loc, ida == idb, tc.same)
			}
			if (ka == kb) != tc.same {
				t.Errorf("lock keys %q and %q: same = %v, want %v", ka, kb, ka == kb, tc.same)
			}
		})
	}
}

func identityAndKey(t *testing.T, r repo) (string, string) {
	t.Helper()
	p, err := plugin.Get(r.tool)
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.Identity(r.repository())
	if err != nil {
		t.Fatalf("Identity(%q): %v", r.loc, err)
	}
	key, err := plugin.LockKey(r.repository())
	if err != nil {
		t.Fatalf("LockKey(%q): %v", r.loc, err)
	}
	return id, key
}

// TestNoCredentialInKey: a password written into a location never reaches
// the identity, the lock key or an error message.
func TestNoCredentialInKey(t *testing.T) {
	const secret = "s3cr3tPW"
	for _, r := range []repo{
		rs("rest:https://user:" + secret + "@host/p"),
		rs("rest:http://user:" + secret + "@host:8000/p/"),
		rs("sftp://user:" + secret + "@host//srv/r"),
		rs("sftp://user:" + secret + "@host/r"),
		rs("s3:https://AKIA:" + secret + "@s3.amazonaws.com/b/p"),
		rs("s3:http://AKIA:" + secret + "@minio:9000/b/p"),
		{"exec", "https://u:" + secret + "@store/p", "node1", false},
		// refused locations: the error must not quote the password either
		rs("rest:https://user:" + secret + "#@host/p"),
		rs("rest:https://user:pa/" + secret + "@host/p"),
		rs("s3:AKIA:" + secret + "@host/b"),
		rs("rclone::s3,secret_access_key=" + secret + ":b/p"),
		bg("ssh://u:" + secret + "@h/srv/borg"),
		{"exec", "u:" + secret + "@h:path", "node1", false},
	} {
		p, err := plugin.Get(r.tool)
		if err != nil {
			t.Fatal(err)
		}
		id, idErr := p.Identity(r.repository())
		key, keyErr := plugin.LockKey(r.repository())
		for what, s := range map[string]string{"identity": id, "lock key": key, "identity error": errString(idErr), "lock key error": errString(keyErr)} {
			if strings.Contains(strings.ToLower(s), strings.ToLower(secret)) {
				t.Errorf("%s location %q: %s %q contains the password", r.tool, r.loc, what, s)
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestExplicitLockKeyOverrides(t *testing.T) {
	// With lock_key the location is not even parsed: a location this
	// plugin cannot derive an identity from is fine.
	key, err := plugin.LockKey(plugin.Repository{Tool: "exec", Location: "anything goes", LockKey: "db-dumps"})
	if err != nil || key != "db-dumps" {
		t.Fatalf("LockKey = %q, %v; want db-dumps", key, err)
	}
	key, err = plugin.LockKey(plugin.Repository{Tool: "restic", Location: "sftp:u@nas:/srv/restic/photos"})
	if err != nil || !strings.HasPrefix(key, "restic-sftp-nas-srv-restic-photos-") {
		t.Fatalf("derived LockKey = %q, %v", key, err)
	}
}
