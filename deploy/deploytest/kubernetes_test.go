package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
)

// kustomization is the part of kustomize's Kustomization the manifests use;
// decoding it strictly keeps the file to fields this test understands.
type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// manifests is every object of deploy/kubernetes, decoded into the
// Kubernetes API types.
type manifests struct {
	services     []*corev1.Service
	secrets      []*corev1.Secret
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
	namespaces   []*corev1.Namespace
}

// workload is a pod template and what it is called.
type workload struct {
	name     string
	selector *metav1.LabelSelector
	template corev1.PodTemplateSpec
	claims   []corev1.PersistentVolumeClaim
}

func (m *manifests) workloads() []workload {
	var out []workload
	for _, s := range m.statefulSets {
		out = append(out, workload{"StatefulSet/" + s.Name, s.Spec.Selector, s.Spec.Template, s.Spec.VolumeClaimTemplates})
	}
	for _, d := range m.deployments {
		out = append(out, workload{"Deployment/" + d.Name, d.Spec.Selector, d.Spec.Template, nil})
	}
	return out
}

// TestKubernetesManifests decodes every manifest under deploy/kubernetes
// strictly (an unknown or misspelt field fails) into the Kubernetes API types
// and checks what refers to what: selectors and pod labels, Service target
// ports and container ports, StatefulSet services, volumes and mounts,
// secrets and the files atoll is told to read from them, probes, and every
// atoll flag against `atoll <command> --help`, with the container ports
// matching the addresses atoll listens on.
func TestKubernetesManifests(t *testing.T) {
	dir := deployPath(t, "kubernetes")
	k := readKustomization(t, dir)
	m := decodeManifests(t, dir, k)

	if len(m.statefulSets) == 0 || len(m.deployments) == 0 || len(m.pdbs) == 0 || len(m.secrets) == 0 {
		t.Fatalf("want StatefulSets, Deployments, PodDisruptionBudgets and the objstore Secret; have %d, %d, %d, %d",
			len(m.statefulSets), len(m.deployments), len(m.pdbs), len(m.secrets))
	}
	for _, w := range m.workloads() {
		t.Run(strings.ReplaceAll(w.name, "/", "_"), func(t *testing.T) {
			checkWorkload(t, m, w)
		})
	}
	for _, s := range m.statefulSets {
		svc := m.service(s.Spec.ServiceName)
		switch {
		case svc == nil:
			t.Errorf("StatefulSet/%s: serviceName %q is no Service here", s.Name, s.Spec.ServiceName)
		case svc.Spec.ClusterIP != corev1.ClusterIPNone:
			t.Errorf("StatefulSet/%s: its service %s is not headless", s.Name, svc.Name)
		}
		for _, c := range s.Spec.VolumeClaimTemplates {
			// The disk alerts watch claims named data-atoll-*.
			if claim := c.Name + "-" + s.Name; !strings.HasPrefix(claim, "data-atoll-") {
				t.Errorf("StatefulSet/%s: claims %s-N, which the disk alerts (data-atoll-.*) do not watch", s.Name, claim)
			}
		}
	}
	for _, svc := range m.services {
		checkService(t, m, svc)
	}
	for _, p := range m.pdbs {
		if n := len(m.podsSelectedBy(t, p.Spec.Selector)); n != 1 {
			t.Errorf("PodDisruptionBudget/%s selects the pods of %d workloads, want 1", p.Name, n)
		}
		if (p.Spec.MaxUnavailable == nil) == (p.Spec.MinAvailable == nil) {
			t.Errorf("PodDisruptionBudget/%s: set one of maxUnavailable and minAvailable", p.Name)
		}
	}
	// Receivers are reachable for gossip joins before they are ready.
	for _, s := range m.statefulSets {
		if strings.HasSuffix(s.Name, "-receive") {
			if svc := m.service(s.Spec.ServiceName); svc != nil && !svc.Spec.PublishNotReadyAddresses {
				t.Errorf("Service/%s: receivers join through it while starting: set publishNotReadyAddresses", svc.Name)
			}
		}
	}
}

func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: apiVersion %q kind %q", k.APIVersion, k.Kind)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("%s is not listed in kustomization.yaml's resources", base)
		}
	}
	return k
}

func decodeManifests(t *testing.T, dir string, k kustomization) *manifests {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	m := &manifests{}
	for _, res := range k.Resources {
		f, err := os.Open(filepath.Join(dir, res))
		if err != nil {
			t.Fatalf("kustomization.yaml lists %s: %v", res, err)
		}
		r := k8syaml.NewYAMLReader(bufio.NewReader(f))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", res, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			obj, _, err := strict.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s, document %d: %v", res, i+1, err)
				continue
			}
			switch o := obj.(type) {
			case *corev1.Service:
				m.services = append(m.services, o)
			case *corev1.Secret:
				m.secrets = append(m.secrets, o)
			case *corev1.Namespace:
				m.namespaces = append(m.namespaces, o)
			case *appsv1.StatefulSet:
				m.statefulSets = append(m.statefulSets, o)
			case *appsv1.Deployment:
				m.deployments = append(m.deployments, o)
			case *policyv1.PodDisruptionBudget:
				m.pdbs = append(m.pdbs, o)
			default:
				t.Errorf("%s, document %d: unexpected %T", res, i+1, obj)
			}
		}
		_ = f.Close()
	}
	return m
}

func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.SplitSeq(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

func (m *manifests) service(name string) *corev1.Service {
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (m *manifests) secret(name string) *corev1.Secret {
	for _, s := range m.secrets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// podsSelectedBy returns the workloads whose pods a label selector selects.
func (m *manifests) podsSelectedBy(t *testing.T, ls *metav1.LabelSelector) []workload {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Errorf("selector %v: %v", ls, err)
		return nil
	}
	var out []workload
	for _, w := range m.workloads() {
		if sel.Matches(labels.Set(w.template.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func checkWorkload(t *testing.T, m *manifests, w workload) {
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %v: %v", w.selector, err)
	}
	if !sel.Matches(labels.Set(w.template.Labels)) {
		t.Errorf("selector %s does not match the pod labels %v", sel, w.template.Labels)
	}
	if n := len(m.podsSelectedBy(t, w.selector)); n != 1 {
		t.Errorf("selector %s matches the pods of %d workloads, want only its own", sel, n)
	}

	pod := w.template.Spec
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Volumes {
		volumes[pod.Volumes[i].Name] = &pod.Volumes[i]
	}
	claims := map[string]bool{}
	for _, c := range w.claims {
		claims[c.Name] = true
	}
	mounted := map[string]bool{}
	for _, c := range pod.Containers {
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("container %s requests no CPU or memory", c.Name)
		}
		for _, vm := range c.VolumeMounts {
			mounted[vm.Name] = true
			if volumes[vm.Name] == nil && !claims[vm.Name] {
				t.Errorf("container %s mounts %q, which is neither a volume nor a claim template", c.Name, vm.Name)
			}
		}
		for _, p := range []struct {
			what  string
			probe *corev1.Probe
			path  string
		}{{"readiness", c.ReadinessProbe, "/-/ready"}, {"liveness", c.LivenessProbe, "/-/healthy"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("container %s has no HTTP %s probe", c.Name, p.what)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("container %s: %s probe on %q, want %s", c.Name, p.what, p.probe.HTTPGet.Path, p.path)
			}
			if port := containerPort(c, p.probe.HTTPGet.Port, corev1.ProtocolTCP); port == nil || port.Name != "http" {
				t.Errorf("container %s: %s probe port %s is not the container's http port", c.Name, p.what, p.probe.HTTPGet.Port.String())
			}
		}
		checkAtollContainer(t, m, c, volumes)
	}
	for name := range volumes {
		if !mounted[name] {
			t.Errorf("volume %q is mounted by no container", name)
		}
	}
	for name := range claims {
		if !mounted[name] {
			t.Errorf("claim template %q is mounted by no container", name)
		}
	}
	for _, v := range volumes {
		if v.Secret != nil && m.secret(v.Secret.SecretName) == nil {
			t.Errorf("volume %q uses Secret %q, which is not among the manifests", v.Name, v.Secret.SecretName)
		}
	}
}

func checkService(t *testing.T, m *manifests, svc *corev1.Service) {
	t.Helper()
	ws := m.podsSelectedBy(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
	if len(svc.Spec.Selector) == 0 || len(ws) == 0 {
		t.Errorf("Service/%s selects no pods of these manifests (selector %v)", svc.Name, svc.Spec.Selector)
		return
	}
	for _, sp := range svc.Spec.Ports {
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(sp.Port)
		}
		for _, w := range ws {
			found := false
			for _, c := range w.template.Spec.Containers {
				if containerPort(c, target, proto) != nil {
					found = true
				}
			}
			if !found {
				t.Errorf("Service/%s port %s: no %s container port %s in %s", svc.Name, sp.Name, proto, target.String(), w.name)
			}
		}
	}
}

// containerPort finds the container's port a probe or Service refers to, by
// name or number.
func containerPort(c corev1.Container, ref intstr.IntOrString, proto corev1.Protocol) *corev1.ContainerPort {
	for i, p := range c.Ports {
		pp := p.Protocol
		if pp == "" {
			pp = corev1.ProtocolTCP
		}
		if pp != proto {
			continue
		}
		if (ref.Type == intstr.String && p.Name == ref.StrVal) || (ref.Type == intstr.Int && p.ContainerPort == ref.IntVal) {
			return &c.Ports[i]
		}
	}
	return nil
}

// listenFlags maps container port names to the atoll flag whose address
// the port must be.
var listenFlags = map[string]string{
	"http":         "http-address",
	"grpc":         "grpc-address",
	"remote-write": "remote-write.address",
	"gossip":       "ring.listen-address",
	"gossip-udp":   "ring.listen-address",
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkAtollContainer checks an atoll container's arguments: a command atoll
// has, flags that command has, environment references that are defined,
// files under mounted Secrets that the Secret holds, and container ports
// that are the addresses atoll listens on.
func checkAtollContainer(t *testing.T, m *manifests, c corev1.Container, volumes map[string]*corev1.Volume) {
	t.Helper()
	if len(c.Command) > 0 {
		t.Errorf("container %s overrides the image's entrypoint; give atoll's command in args", c.Name)
	}
	if len(c.Args) == 0 {
		t.Errorf("container %s: no atoll command in args", c.Name)
		return
	}
	cmd := c.Args[0]
	flags, err := atollFlags(t, cmd)
	if err != nil {
		t.Errorf("container %s: %v", c.Name, err)
		return
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	given := map[string]string{}
	for _, a := range c.Args[1:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") {
			t.Errorf("container %s: argument %q is not a --flag", c.Name, a)
			continue
		}
		if _, ok := flags[name]; !ok {
			t.Errorf("container %s: `atoll %s --help` has no flag --%s", c.Name, cmd, name)
		}
		given[name] = value
		for _, ref := range envRef.FindAllStringSubmatch(a, -1) {
			if !env[ref[1]] {
				t.Errorf("container %s: %s refers to $(%s), which is not in env", c.Name, a, ref[1])
			}
		}
	}
	// A file atoll reads from a mounted Secret must be one of its keys.
	if path, ok := given["objstore.config-file"]; ok {
		found := false
		for _, vm := range c.VolumeMounts {
			rel, err := filepath.Rel(vm.MountPath, path)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			found = true
			v := volumes[vm.Name]
			if v == nil || v.Secret == nil {
				t.Errorf("container %s: %s is under %s, which is not a Secret", c.Name, path, vm.MountPath)
				continue
			}
			if s := m.secret(v.Secret.SecretName); s != nil {
				_, inString := s.StringData[rel]
				_, inData := s.Data[rel]
				if !inString && !inData {
					t.Errorf("container %s reads %s from Secret %s, which has no key %s", c.Name, path, s.Name, rel)
				}
			}
		}
		if !found {
			t.Errorf("container %s: --objstore.config-file=%s is under no mount", c.Name, path)
		}
	}
	for _, p := range c.Ports {
		flag, ok := listenFlags[p.Name]
		if !ok {
			t.Errorf("container %s: port %q: no atoll listener by that name (want one of http, grpc, remote-write, gossip, gossip-udp)", c.Name, p.Name)
			continue
		}
		addr, ok := given[flag]
		if !ok {
			addr, ok = flags[flag]
		}
		if !ok {
			t.Errorf("container %s: port %s, but `atoll %s` has no --%s", c.Name, p.Name, cmd, flag)
			continue
		}
		_, port, err := net.SplitHostPort(addr)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || int32(n) != p.ContainerPort {
			t.Errorf("container %s: port %s is %d but atoll %s listens on --%s=%s", c.Name, p.Name, p.ContainerPort, cmd, flag, addr)
		}
	}
}

var atollHelp struct {
	mu    sync.Mutex
	flags map[string]map[string]string
}

// helpFlag matches a flag in kingpin's help: --name, --[no-]name, and its
// default when it has one. Flags are indented a little; descriptions that
// mention flags, a lot.
var helpFlag = regexp.MustCompile(`(?m)^ {2,8}(?:-\w, )?--(?:\[no-\])?([a-z0-9][a-z0-9.\-]*)(?:="([^"]*)"|=(\S+))?`)

// atollFlags returns the flags `atoll <cmd> --help` lists, with their
// defaults.
func atollFlags(t *testing.T, cmd string) (map[string]string, error) {
	atollHelp.mu.Lock()
	defer atollHelp.mu.Unlock()
	if f, ok := atollHelp.flags[cmd]; ok {
		return f, nil
	}
	out, err := exec.Command(atollBinary(t), cmd, "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("atoll %s --help: %v\n%s", cmd, err, out)
	}
	flags := map[string]string{}
	for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = m[2] + m[3]
	}
	if len(flags) < 3 {
		return nil, fmt.Errorf("atoll %s --help lists no flags:\n%s", cmd, out)
	}
	if atollHelp.flags == nil {
		atollHelp.flags = map[string]map[string]string{}
	}
	atollHelp.flags[cmd] = flags
	return flags, nil
}
