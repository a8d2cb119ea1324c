package secrets_test

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tdsproxy/tdsproxy/internal/emulator"
)

// repoRoot is the module root, two levels up from this package.
const repoRoot = "../.."

// goFiles parses every non-test Go file of the repository (node_modules
// and testdata excluded).
func goFiles(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != repoRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files[path] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("only %d Go files under %s", len(files), repoRoot)
	}
	return fset, files
}

func render(fset *token.FileSet, e ast.Expr) string {
	var b bytes.Buffer
	_ = printer.Fprint(&b, fset, e)
	return b.String()
}

// secretish matches an expression that names key material or a secret.
var secretish = regexp.MustCompile(`(?i)key|secret|passw|token`)

// keyWrite is a file write whose path or data names key material.
type keyWrite struct {
	pos, call, mode string
	ok              bool // mode is 0600 or stricter
}

// keyWrites finds each os.WriteFile/os.OpenFile/os.Create whose path or
// data names a key, a key log, a password or a token, with its mode.
func keyWrites(fset *token.FileSet, files map[string]*ast.File) []keyWrite {
	var out []keyWrite
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || (pkg.Name != "os" && pkg.Name != "ioutil") {
				return true
			}
			var mode ast.Expr
			switch sel.Sel.Name {
			case "WriteFile", "OpenFile":
				if len(call.Args) == 3 {
					mode = call.Args[2]
				}
			case "Create":
				// Mode 0666: never right for a secret.
			default:
				return true
			}
			var text []string
			for _, a := range call.Args[:min(len(call.Args), 2)] {
				text = append(text, render(fset, a))
			}
			what := strings.Join(text, ", ")
			if !secretish.MatchString(what) {
				return true
			}
			m := ""
			if mode != nil {
				m = render(fset, mode)
			}
			out = append(out, keyWrite{
				pos:  fset.Position(call.Pos()).String(),
				call: pkg.Name + "." + sel.Sel.Name + "(" + what + ")",
				mode: m,
				ok:   m == "0o600" || m == "0600" || m == "0o400" || m == "0400",
			})
			return true
		})
	}
	return out
}

// Every file the project writes that holds a private key, a TLS key log or
// another secret is created 0600 (issue 7). The check reads the source:
// each os.WriteFile/os.OpenFile/os.Create whose path or data names such
// material must pass the literal mode 0o600 (os.Create, mode 0666, never
// may). Today one call writes a private key (internal/lab's s_server.key,
// 0o600) and none writes a key log (no tls.Config.KeyLogWriter anywhere).
func TestSecretFilesAre0600(t *testing.T) {
	fset, files := goFiles(t)
	for _, w := range keyWrites(fset, files) {
		if !w.ok {
			t.Errorf("%s: %s writes key material with mode %q, want 0o600", w.pos, w.call, w.mode)
		} else {
			t.Logf("%s: %s, mode %s", w.pos, w.call, w.mode)
		}
	}
	// A key log would come from tls.Config.KeyLogWriter; name it if one
	// appears, so that a reader checks the file it writes.
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok && id.Name == "KeyLogWriter" {
				t.Logf("%s uses KeyLogWriter: its file must be opened 0600", fset.Position(id.Pos()))
			}
			return true
		})
	}
}

// The check above sees a key written 0644 and a key log created with
// os.Create.
func TestSecretFileCheckFindsBadModes(t *testing.T) {
	src := `package x
import "os"
func f(keyFile string, keyPEM, certPEM []byte) {
	os.WriteFile(keyFile, keyPEM, 0o644)
	os.Create("/tmp/tls.keylog")
	os.OpenFile("token.txt", os.O_CREATE|os.O_WRONLY, 0o600)
	os.WriteFile("server.pem", certPEM, 0o644)
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bad, good int
	for _, w := range keyWrites(fset, map[string]*ast.File{"x.go": f}) {
		if w.ok {
			good++
		} else {
			bad++
		}
	}
	if bad != 2 || good != 1 {
		t.Errorf("found %d bad and %d good key writes, want 2 and 1", bad, good)
	}
}

// The cert written by `tdsproxy emulate --cert-out` is the certificate
// only: the emulator never exports its private key.
func TestCertOutHoldsNoKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "cmd", "tdsproxy", "emulate.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("os.WriteFile(f.certOut, srv.CertificatePEM()")) {
		t.Fatal("emulate --cert-out no longer writes CertificatePEM: re-check what it writes and its mode")
	}
	srv := startEmulator(t, emulator.Config{})
	if pem := srv.CertificatePEM(); bytes.Contains(pem, []byte("PRIVATE KEY")) || !bytes.Contains(pem, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("CertificatePEM holds:\n%s", pem)
	}
}
