"""The local platform (the project's embedded default target) as a package; `localplatform/platformctl.py` is its
command line. Every part takes the Config it works on (config.py) instead of reading globals at import:

  config      the configuration: platform.yml (versions, ports, the worker node), the state and cache folders
  errors      PlatformError (what an operator can act on) and log()
  builds      the pinned Go builds, cached outside the checkout and keyed by version
  pki         the cluster CA, every identity's certificate and the kubeconfigs
  supervisor  Component and its supervision: start (ports checked, health awaited), stop, pid files that carry
              the process start time
  components  every component in start order, and the local Prometheus' own configuration
  node        the real worker node: containerd, CNI, kubelet, kube-proxy; images loaded into it
  cli         the commands: up, down, status, build, env, terraformrc, load-images
"""
