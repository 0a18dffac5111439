package detlint_test

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Citation rules (docs/architecture.md, "Citations"). A newcomer must be able
// to follow every pointer in the code and docs without anything outside the
// repository, so TestCitations scans every .go, .proto and .md file of the
// module and reports:
//
//  1. A markdown link in a .md file, [text](target), whose target (without
//     its #fragment) is not a file or directory relative to the linking
//     file, exactly as a renderer follows it. URLs and #anchors are not
//     checked; nor is text inside code spans or fenced code blocks (Go code
//     such as m[k](x) is no link).
//  2. Any other mention of a name ending in .md (prose, code spans, Go
//     comments and strings) that resolves to no file: it is looked up
//     relative to the citing file's directory, then relative to the
//     repository root, then, for a bare name without a slash, as
//     docs/<name>. A GitHub URL into this repository
//     (https://github.com/stratadb/strata/blob/<ref>/<path>) is checked as
//     <path> from the root; other URLs are not checked.
//  3. Any citation of the design, style and reference notes that predate the
//     repository and live outside it: the upper-case words those notes were
//     cited by, and paths into the shared folder beside the checkout
//     (citationOutsideRe).
//
// Directories named testdata or vendor or node_modules, and those starting
// with "." (.git, .ci), are skipped. This file is exempt: it holds the
// forbidden patterns as test data.

// citationSelf is the exempt file (this one), relative to the root.
const citationSelf = "sim/detlint/citations_test.go"

var (
	// citationLinkRe matches a markdown link's target: "](target)".
	citationLinkRe = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// citationMDRe matches a name ending in .md, with its path or URL.
	citationMDRe = regexp.MustCompile(`[A-Za-z0-9_.~:/-]*[A-Za-z0-9_-]\.md\b`)
	// citationOutsideRe matches citations of notes outside the repository.
	citationOutsideRe = regexp.MustCompile(`\b(DESIGN|STYLE|REFERENCE)\b|(\.\./|/work/)shared\b`)
	// citationCodeSpanRe matches an inline code span.
	citationCodeSpanRe = regexp.MustCompile("`[^`]*`")
)

// citationRepoURL is the prefix of a GitHub URL into this repository.
const citationRepoURL = "https://github.com/stratadb/strata/blob/"

type citationFinding struct {
	File string // slash-separated, relative to the root
	Line int
	Msg  string
}

func (f citationFinding) String() string { return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Msg) }

// checkCitations applies the citation rules to every .go, .proto and .md
// file under root and returns the findings in file and line order.
func checkCitations(root string) ([]citationFinding, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") || strings.HasSuffix(name, ".proto") || strings.HasSuffix(name, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			if rel = filepath.ToSlash(rel); rel != citationSelf {
				files = append(files, rel)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var out []citationFinding
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
		if err != nil {
			return nil, err
		}
		out = append(out, checkCitationFile(root, rel, string(b))...)
	}
	return out, nil
}

func checkCitationFile(root, rel, text string) []citationFinding {
	var out []citationFinding
	dir := path.Dir(rel)
	isMD := strings.HasSuffix(rel, ".md")
	fenced := false
	for i, line := range strings.Split(text, "\n") {
		add := func(format string, args ...any) {
			out = append(out, citationFinding{File: rel, Line: i + 1, Msg: fmt.Sprintf(format, args...)})
		}
		for _, m := range citationOutsideRe.FindAllString(line, -1) {
			add("cites %q, which is outside the repository: cite a file in it (docs/neon-compat.md, docs/architecture.md, docs/simulator.md …)", m)
		}
		rest := line
		if isMD {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
			}
			if !fenced {
				prose := citationCodeSpanRe.ReplaceAllStringFunc(line, func(s string) string { return strings.Repeat(" ", len(s)) })
				for _, loc := range citationLinkRe.FindAllStringSubmatchIndex(prose, -1) {
					target := prose[loc[2]:loc[3]]
					// Blank the target so rule 2 does not report it again.
					rest = rest[:loc[2]] + strings.Repeat(" ", loc[3]-loc[2]) + rest[loc[3]:]
					if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
						continue
					}
					target, _, _ = strings.Cut(target, "#")
					if !citationExists(root, path.Join(dir, target), true) {
						add("link target %q does not exist relative to %s", target, rel)
					}
				}
			}
		}
		for _, m := range citationMDRe.FindAllString(rest, -1) {
			if citationOutsideRe.MatchString(m) {
				continue // reported above
			}
			if u, ok := strings.CutPrefix(m, citationRepoURL); ok {
				_, p, _ := strings.Cut(u, "/") // drop the ref
				if !citationExists(root, p, false) {
					add("%q names %s, which is not in the repository", m, p)
				}
				continue
			}
			if strings.Contains(m, "://") {
				continue // another site's page
			}
			if !citationResolves(root, dir, m) {
				add("%q is not a file of the repository (looked up relative to %s, to the root, and as docs/<name>)", m, rel)
			}
		}
	}
	return out
}

// citationResolves reports whether the mention p, made in a file in dir,
// names a file: relative to dir, to the root, or (a bare name) in docs/.
func citationResolves(root, dir, p string) bool {
	if citationExists(root, path.Join(dir, p), false) {
		return true
	}
	if !strings.HasPrefix(p, "./") && !strings.HasPrefix(p, "../") && citationExists(root, p, false) {
		return true
	}
	return !strings.Contains(p, "/") && citationExists(root, "docs/"+p, false)
}

// citationExists reports whether rel (slash-separated, relative to root)
// names a file inside root; a directory counts only if dirOK.
func citationExists(root, rel string, dirOK bool) bool {
	rel = path.Clean(rel)
	if path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		return false
	}
	st, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
	return err == nil && (st.Mode().IsRegular() || dirOK && st.IsDir())
}

// moduleRoot is the directory holding go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// TestCitations fails on every citation in the repository that a reader
// cannot follow inside it (the rules above).
func TestCitations(t *testing.T) {
	root := moduleRoot(t)
	findings, err := checkCitations(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("%s", f)
	}
	// The scan must have seen the docs, or it would pass vacuously.
	if _, err := os.Stat(filepath.Join(root, "docs", "neon-compat.md")); err != nil {
		t.Errorf("docs/neon-compat.md: %v", err)
	}
}

// TestPlantedCitations plants each kind of bad citation in a fake tree and
// checks it is reported at its file and line, and that the citations the
// rules accept are not.
func TestPlantedCitations(t *testing.T) {
	base := map[string]string{
		"go.mod":          "module example.com/m\n\ngo 1.26\n",
		"README.md":       "# m\n\nSee [the docs](docs/guide.md) and docs/guide.md.\n",
		"docs/guide.md":   "# Guide\n\nBack to [the readme](../README.md#m).\n",
		"engine/x/x.go":   "// Package x (docs/guide.md, guide.md).\npackage x\n",
		"engine/x/doc.md": "Local notes.\n",
	}
	cases := []struct {
		name  string
		files map[string]string
		want  []string // "file:line: " prefix and a message substring, joined by "|"
	}{
		{name: "clean", files: nil, want: nil},
		{
			name:  "missing bare name in a Go comment",
			files: map[string]string{"engine/y/y.go": "package y\n\n// See NOTES.md for why.\nfunc F() {}\n"},
			want:  []string{"engine/y/y.go:3: |\"NOTES.md\" is not a file"},
		},
		{
			name:  "outside notes by word and section",
			files: map[string]string{"engine/y/y.go": "package y\n\n// Rules (DESIGN §4).\n// Recoverable faults (STYLE 17).\nfunc F() {}\n"},
			want:  []string{"engine/y/y.go:3: |\"DESIGN\"", "engine/y/y.go:4: |\"STYLE\""},
		},
		{
			name:  "outside reference file",
			files: map[string]string{"docs/keys.md": "# Keys\n\nAs REFERENCE.md \"Keys\" says.\n"},
			want:  []string{"docs/keys.md:3: |\"REFERENCE\""},
		},
		{
			name:  "shared folder",
			files: map[string]string{"docs/s.md": "# S\n\nFrom ../shared/seeds/000_abc.txt.\n", "engine/y/y.go": "package y\n\n// /work/shared/x\n", "engine/y/y.proto": "syntax = \"proto3\";\n// See ../shared/DESIGN.md.\n"},
			want:  []string{"docs/s.md:3: |\"../shared\"", "engine/y/y.go:3: |\"/work/shared\"", "engine/y/y.proto:2: |\"../shared\"", "engine/y/y.proto:2: |\"DESIGN\""},
		},
		{
			name:  "broken markdown link",
			files: map[string]string{"docs/a.md": "# A\n\nSee [b](b.md#top).\n"},
			want:  []string{"docs/a.md:3: |link target \"b.md\""},
		},
		{
			name: "a link resolves relative to its file, not the root",
			// docs/guide.md exists, docs/docs/guide.md does not; the same
			// text outside a link is a root-relative mention and passes.
			files: map[string]string{"docs/a.md": "# A\n\n[g](docs/guide.md), docs/guide.md\n"},
			want:  []string{"docs/a.md:3: |link target \"docs/guide.md\""},
		},
		{
			name:  "relative path that leaves the file's folder",
			files: map[string]string{"engine/y/y.go": "package y\n\n// ../z/missing.md\n"},
			want:  []string{"engine/y/y.go:3: |\"../z/missing.md\""},
		},
		{
			name:  "URL into the repository",
			files: map[string]string{"engine/y/y.go": "package y\n\nconst U = \"https://github.com/stratadb/strata/blob/main/docs/gone.md#x\"\nconst V = \"https://github.com/stratadb/strata/blob/main/docs/guide.md#y\"\n"},
			want:  []string{"engine/y/y.go:3: |names docs/gone.md"},
		},
		{
			name: "accepted forms",
			files: map[string]string{
				"engine/y/y.go": "package y\n\n// docs/guide.md, guide.md, ../x/doc.md, README.md, *.md,\n// https://example.com/other.md, foo.mdx.\n",
				"docs/b.md":     "# B\n\n[g](guide.md) [x](../engine/x) [web](https://example.com/a.md) [top](#b)\n\n```go\nh := m[k](ctx) // not a link\n```\n\n`f[i](x)` in a code span.\n",
			},
			want: nil,
		},
		{
			name:  "skipped folders",
			files: map[string]string{"engine/y/testdata/t.go": "// NOTES.md DESIGN §1\n", ".ci/n.md": "STYLE 3\n", "vendor/v/v.go": "// gone.md\n"},
			want:  nil,
		},
		{
			name:  "several on one line",
			files: map[string]string{"docs/c.md": "# C\n\nSee a.md and [b](b.md) and `d.md`.\n"},
			want:  []string{"docs/c.md:3: |link target \"b.md\"", "docs/c.md:3: |\"a.md\" is not", "docs/c.md:3: |\"d.md\" is not"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{}
			for k, v := range base {
				files[k] = v
			}
			for k, v := range tc.files {
				files[k] = v
			}
			for rel, text := range files {
				p := filepath.Join(dir, filepath.FromSlash(rel))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := checkCitations(dir)
			if err != nil {
				t.Fatal(err)
			}
			unmatched := slices.Clone(got)
			for _, w := range tc.want {
				prefix, sub, _ := strings.Cut(w, "|")
				i := slices.IndexFunc(unmatched, func(f citationFinding) bool {
					return strings.HasPrefix(f.String(), prefix) && strings.Contains(f.Msg, sub)
				})
				if i < 0 {
					t.Errorf("want a finding %q containing %q; got %v", prefix, sub, got)
					continue
				}
				unmatched = slices.Delete(unmatched, i, i+1)
			}
			for _, f := range unmatched {
				t.Errorf("unexpected finding: %s", f)
			}
		})
	}
}
