# Remote state of the staging environment (partial backend configuration of terraform/stack).
bucket       = "colors-staging-terraform-state"
key          = "colors/staging/terraform.tfstate"
encrypt      = true
use_lockfile = true
