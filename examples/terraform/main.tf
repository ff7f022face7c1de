# A network and a highly available cache on Cacheplane, managed with Terraform.
#
#   cargo build --release -p terraform-provider-cacheplane
#   export TF_CLI_CONFIG_FILE=$PWD/dev.tfrc      # see docs/terraform.md: dev_overrides
#   export CACHEPLANE_TOKEN=...                   # the token stays out of this file
#   terraform plan -var endpoint=http://127.0.0.1:8080 -var project=demo-project
#   terraform apply -var endpoint=http://127.0.0.1:8080 -var project=demo-project

terraform {
  required_providers {
    cacheplane = {
      source = "cacheplane/cacheplane"
    }
  }
}

variable "endpoint" {
  description = "The Cacheplane API (CACHEPLANE_ENDPOINT also works)"
  type        = string
  default     = "http://127.0.0.1:8080"
}

variable "project" {
  description = "The project the resources belong to"
  type        = string
}

variable "region" {
  description = "The region of the instance"
  type        = string
  default     = "local"
}

variable "network_range" {
  description = "The network's address pool: it must lie in one of the API's --network-supernets (in the local stack's loopback mode, a /16 of 127.64.0.0/10 not used by another network)"
  type        = string
  default     = "127.99.0.0/16"
}

# The token comes from CACHEPLANE_TOKEN (or a `token` setting fed by a sensitive variable).
provider "cacheplane" {
  endpoint = var.endpoint
  project  = var.project
  region   = var.region
}

data "cacheplane_zones" "here" {}

resource "cacheplane_network" "app" {
  network_id  = "app"
  ip_range    = var.network_range
  description = "the application's caches"
}

resource "cacheplane_instance" "sessions" {
  instance_id        = "sessions"
  display_name       = "session cache"
  tier               = "STANDARD_HA"
  memory_size_gb     = 1 # in place: CONFIG SET maxmemory on the running engines
  replica_count      = 1
  location_id        = data.cacheplane_zones.here.zones[0]
  authorized_network = cacheplane_network.app.network_id
  redis_configs = {
    "maxmemory-policy" = "allkeys-lru"
  }
  labels = {
    team = "web"
  }

  timeouts {
    create = "10m"
    update = "10m"
    delete = "10m"
  }
}

output "redis_host" {
  description = "REDISHOST"
  value       = cacheplane_instance.sessions.host
}

output "redis_port" {
  description = "REDISPORT"
  value       = cacheplane_instance.sessions.port
}

output "redis_auth" {
  description = "The AUTH string (terraform output -raw redis_auth)"
  value       = cacheplane_instance.sessions.auth_string
  sensitive   = true
}

output "current_zone" {
  description = "Where the primary runs now"
  value       = cacheplane_instance.sessions.current_location_id
}
