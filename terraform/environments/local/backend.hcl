# Remote state of the local environment (partial backend configuration of terraform/stack).
bucket       = "colors-local-terraform-state"
key          = "colors/local/terraform.tfstate"
encrypt      = true
use_lockfile = true
