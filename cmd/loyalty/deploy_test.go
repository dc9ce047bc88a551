package main

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/wxloyalty/loyalty/configs"
	"github.com/wxloyalty/loyalty/internal/dbtest"
)

// The deployment kit (deploy/) and docs/operations.md are checked against
// the code: every LOYALTY_* variable they set exists, the environments they
// give load as a configuration, and the alert rules and the dashboard name
// only metrics (and labels) a running instance exports.

const repoRoot = "../.."

// configVariables returns every LOYALTY_* variable the configuration reads.
func configVariables() map[string]bool {
	vars := map[string]bool{"LOYALTY_CONFIG": true} // main's -config default
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if e := f.Tag.Get("env"); e != "" {
				vars[e] = true
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(configs.Config{}))
	return vars
}

var loyaltyVar = regexp.MustCompile(`\bLOYALTY_[A-Z0-9_]*[A-Z0-9]\b`)

func TestDeployKitUsesOnlyRealVariables(t *testing.T) {
	known := configVariables()
	files := []string{filepath.Join(repoRoot, "docs", "operations.md")}
	err := filepath.WalkDir(filepath.Join(repoRoot, "deploy"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "kubecheck" {
			return filepath.SkipDir // a tool, not configuration
		}
		if !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range loyaltyVar.FindAllString(string(raw), -1) {
			seen++
			if !known[v] && !strings.HasPrefix(v, "LOYALTY_TEST_") {
				t.Errorf("%s names %s, which the configuration does not read", f, v)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("only %d LOYALTY_ variables found in the kit: is the walk broken?", seen)
	}
}

// substitute expands compose's ${VAR}, ${VAR:-default} and ${VAR:?message}
// with the values given, else the default.
func substitute(s string, values map[string]string) string {
	return regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}`).ReplaceAllStringFunc(s, func(m string) string {
		p := regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}`).FindStringSubmatch(m)
		if v, ok := values[p[1]]; ok {
			return v
		}
		if p[2] == "-" {
			return p[3]
		}
		return ""
	})
}

func loadEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	if _, err := configs.Load("", list); err != nil {
		t.Errorf("%s: the environment does not load: %v", where, err)
	}
}

func TestDeployEnvironmentsLoad(t *testing.T) {
	// docker compose: every service running the image.
	raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"MYSQL_PASSWORD": "pw", "REDIS_PASSWORD": "pw", "LOYALTY_SECRET_KEY": strings.Repeat("k", 64),
		"LOYALTY_PUBLIC_URL": "https://crm.example.com", "MYSQL_ROOT_PASSWORD": "root"}
	var compose struct {
		Services map[string]struct {
			Build       any               `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(substitute(string(raw), values)), &compose); err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for name, svc := range compose.Services {
		if svc.Build == nil {
			continue
		}
		loadEnv(t, "docker-compose.yaml "+name, svc.Environment)
		roles[name] = svc.Environment["LOYALTY_WORKERS"]
	}
	if roles["api"] != "false" || roles["worker"] != "true" {
		t.Errorf("compose roles: api LOYALTY_WORKERS=%q, worker %q", roles["api"], roles["worker"])
	}

	// systemd: the environment file.
	raw, err = os.ReadFile(filepath.Join(repoRoot, "deploy", "systemd", "loyalty.env"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LOYALTY_DATA_DIR": "/var/lib/loyalty"} // the unit's Environment=
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	loadEnv(t, "systemd/loyalty.env", env)

	// Kubernetes: the ConfigMap and the example Secret, with each
	// container's own env on top.
	base := map[string]string{}
	for _, f := range []string{"configmap.yaml", "secret.example.yaml"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "k8s", f))
		if err != nil {
			t.Fatal(err)
		}
		var obj struct {
			Data       map[string]string `yaml:"data"`
			StringData map[string]string `yaml:"stringData"`
		}
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			t.Fatal(err)
		}
		for k, v := range obj.Data {
			base[k] = v
		}
		for k, v := range obj.StringData {
			base[k] = v
		}
	}
	base["LOYALTY_SECRET_KEY"] = strings.Repeat("k", 64) // the example holds a placeholder
	for _, f := range []string{"api.yaml", "worker.yaml"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "k8s", f))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		for {
			var doc struct {
				Kind string `yaml:"kind"`
				Spec struct {
					Template struct {
						Spec struct {
							Containers []struct {
								Env []struct{ Name, Value string } `yaml:"env"`
							} `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			}
			if err := dec.Decode(&doc); err != nil {
				break
			}
			for _, c := range doc.Spec.Template.Spec.Containers {
				env := map[string]string{}
				for k, v := range base {
					env[k] = v
				}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				loadEnv(t, "k8s/"+f, env)
			}
		}
	}
}

// metricRefs returns the metric names a PromQL expression selects, with the
// label names of their matchers.
func metricRefs(expr string) map[string][]string {
	refs := map[string][]string{}
	selector := regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}`)
	matcher := regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	expr = selector.ReplaceAllStringFunc(expr, func(m string) string {
		p := selector.FindStringSubmatch(m)
		var labels []string
		for _, part := range strings.Split(p[2], ",") {
			if l := matcher.FindStringSubmatch(part); l != nil {
				labels = append(labels, l[1])
			}
		}
		refs[p[1]] = append(refs[p[1]], labels...)
		return " "
	})
	expr = regexp.MustCompile(`"[^"]*"|\[[^\]]*\]|\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(expr, " ")
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true}
	for _, loc := range ident.FindAllStringIndex(expr, -1) {
		if loc[0] > 0 && strings.ContainsAny(expr[loc[0]-1:loc[0]], "0123456789.$") {
			continue // part of a number (1e-9) or a variable
		}
		name := expr[loc[0]:loc[1]]
		if strings.HasPrefix(strings.TrimLeft(expr[loc[1]:], " \t\n"), "(") || keywords[name] {
			continue // a function or a keyword
		}
		if _, ok := refs[name]; !ok {
			refs[name] = nil
		}
	}
	return refs
}

func TestMetricRefs(t *testing.T) {
	got := metricRefs(`histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{route="/x",status=~"5.."}[5m]))) > 2 and max(b) - max(b offset 30m) > 1e-9`)
	want := map[string][]string{"a_seconds_bucket": {"route", "status"}, "b": nil}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestAlertRulesAndDashboardUseExportedMetrics(t *testing.T) {
	// With Redis configured (here one that does not answer: the instance
	// starts in its fallback), so its metrics are registered too.
	a := startAppOn(t, onBackend(t, dbtest.SQLite), func(c *configs.Config) { c.Redis.Addr = "127.0.0.1:1" })
	// A callback request, so the route label value the rules match is seen.
	resp, err := http.Get(a.base + "/wechat/1/callback")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	families := a.metrics.Families()
	families["up"] = []string{"job", "instance"} // Prometheus's own
	routes := map[string]bool{}
	for _, s := range familySeries(t, a, "loyalty_http_requests_total") {
		routes[s["route"]] = true
	}
	if !routes["/wechat/:merchant_id/callback"] {
		t.Fatalf("the callback route label is not what the rules match: %v", routes)
	}

	check := func(where, expr string) {
		t.Helper()
		if strings.Contains(expr, `route="`) {
			for _, m := range regexp.MustCompile(`route="([^"]*)"`).FindAllStringSubmatch(expr, -1) {
				if m[1] != "/wechat/:merchant_id/callback" {
					t.Errorf("%s: route %q is not checked by this test", where, m[1])
				}
			}
		}
		refs := metricRefs(expr)
		if len(refs) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for name, labels := range refs {
			fam, ok := families[name]
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, cut := strings.CutSuffix(name, suffix); !ok && cut {
					fam, ok = families[base]
					if suffix == "_bucket" {
						fam = append(append([]string{}, fam...), "le")
					}
				}
			}
			if !ok {
				t.Errorf("%s: metric %s is not exported", where, name)
				continue
			}
			for _, l := range labels {
				if !contains(fam, l) && l != "job" && l != "instance" {
					t.Errorf("%s: metric %s has no label %q (it has %v)", where, name, l, fam)
				}
			}
		}
	}

	raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	ops, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts++
			check(r.Alert, r.Expr)
			if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("%s: needs a severity label and a summary", r.Alert)
			}
			if !strings.Contains(string(ops), "`"+r.Alert+"`") {
				t.Errorf("%s is not explained in docs/operations.md", r.Alert)
			}
		}
	}
	if alerts < 10 {
		t.Fatalf("only %d alerts parsed", alerts)
	}

	raw, err = os.ReadFile(filepath.Join(repoRoot, "deploy", "grafana", "loyalty.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	targets := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			targets++
			check("dashboard panel "+p.Title, tg.Expr)
		}
	}
	if targets < 10 {
		t.Fatalf("only %d dashboard targets parsed", targets)
	}
}

// familySeries returns the label sets of a gathered family.
func familySeries(t *testing.T, a *testApp, name string) []map[string]string {
	t.Helper()
	fams, err := a.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
