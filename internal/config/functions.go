package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// maxFileSize bounds what file() reads. Values fed in by Nomad templates or
// consul-template are short strings (addresses, paths, keys); anything larger
// is almost certainly the wrong path, and reading it whole would only hide
// that.
const maxFileSize = 1 << 20

// functions returns the functions available in configuration expressions.
// file() resolves relative paths against baseDir, the directory of the
// configuration file, so a config works the same from any working directory.
func functions(baseDir string) map[string]function.Function {
	return map[string]function.Function{
		"env":       envFunc,
		"file":      fileFunc(baseDir),
		"format":    stdlib.FormatFunc,
		"join":      stdlib.JoinFunc,
		"lower":     stdlib.LowerFunc,
		"trimspace": stdlib.TrimSpaceFunc,
		"upper":     stdlib.UpperFunc,
	}
}

// envFunc is env("NAME") or env("NAME", "default"). A variable that is set
// but empty yields "", not the default: an operator who exported an empty
// value meant it.
var envFunc = function.New(&function.Spec{
	Description: "Returns the value of an environment variable, or the given default when it is unset.",
	Params: []function.Parameter{
		{Name: "name", Type: cty.String},
	},
	VarParam: &function.Parameter{Name: "default", Type: cty.String},
	Type:     function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if len(args) > 2 {
			return cty.NilVal, function.NewArgErrorf(2, "env takes a variable name and at most one default value")
		}
		name := args[0].AsString()
		if name == "" {
			return cty.NilVal, function.NewArgErrorf(0, "the variable name must not be empty")
		}
		if v, ok := os.LookupEnv(name); ok {
			if !utf8.ValidString(v) {
				return cty.NilVal, fmt.Errorf("environment variable %q is not valid UTF-8", name)
			}
			return cty.StringVal(v), nil
		}
		if len(args) == 2 {
			return args[1], nil
		}
		return cty.NilVal, fmt.Errorf("environment variable %q is not set and no default was given; set it, or write env(%q, \"default\")", name, name)
	},
})

// fileFunc is file("path"): the file's content, verbatim (a trailing newline
// is kept; wrap in trimspace() to drop it).
func fileFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the content of a file, relative paths being relative to the configuration file.",
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := args[0].AsString()
			if path == "" {
				return cty.NilVal, function.NewArgErrorf(0, "the path must not be empty")
			}
			resolved := path
			if !filepath.IsAbs(resolved) {
				resolved = filepath.Join(baseDir, resolved)
			}
			content, err := readSmallFile(resolved)
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot read %q: %w", path, err)
			}
			if !utf8.Valid(content) {
				return cty.NilVal, fmt.Errorf("%q is not valid UTF-8 text", path)
			}
			return cty.StringVal(string(content)), nil
		},
	})
}

// readSmallFile reads a regular file of at most maxFileSize bytes (file()).
func readSmallFile(path string) ([]byte, error) { return readRegularFile(path, maxFileSize) }

// readRegularFile reads a regular file of at most limit bytes. Only regular
// files are read, so that a path to a FIFO or a device (/dev/zero) cannot
// block or flood the configuration loader: the file is opened without
// blocking (a FIFO's open would wait for a writer) and checked as opened.
func readRegularFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no such file (looked at %s)", path)
		}
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	content, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(content)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return content, nil
}
