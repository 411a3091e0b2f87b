# shellcheck shell=bash
# `machine.sh image`: the root filesystem every local machine boots, built once by debootstrap and
# cached under ${COOP_CACHE}/host-image/<key>/rootfs, key = sha256(package list + this file). It is
# built in a temp folder beside the cache and renamed into place, so a killed build never counts.
# Sourced by machine.sh.

readonly IMAGE_ROOT="${COOP_CACHE:-/var/cache/socialcoop}/host-image"
readonly IMAGE_PACKAGES="${LOCAL_CLOUD_DIR}/image-packages.txt"
readonly IMAGE_SCRIPT="${LOCAL_CLOUD_DIR}/lib/image.sh"
readonly IMAGE_SUITE=bookworm
# Inside the image apt reads only this empty repository: `apt-get update` and installing an
# installed package succeed offline, and cloud-init's package_update/package_upgrade are no-ops.
readonly IMAGE_APT_REPO=/var/lib/coop-apt
# Installed in the image but not running at first boot, as on a fresh cloud host where they are not
# installed yet: the program (or a host script) enables what a host needs.
readonly IMAGE_DISABLED_SERVICES=(nginx redis-server postgresql prometheus-node-exporter)
# What cloud-init's user-data installs (components/lib/cloud-init.ts): checked to be a no-op offline.
readonly IMAGE_CLOUD_INIT_PACKAGES=(unattended-upgrades apt-listchanges fail2ban python3-systemd chrony)

image_usage() {
  cat <<'EOF'
Usage: machine.sh image
Builds (once) the Debian 12 root filesystem of local machines and prints its path on stdout.
  COOP_CACHE   cache folder (default /var/cache/socialcoop); the image is host-image/<key>/rootfs,
               key = sha256 of tools/local-cloud/image-packages.txt + tools/local-cloud/lib/image.sh.
The packages come from the Debian mirror this machine's apt is configured with (bookworm,
bookworm-updates, bookworm-security). A cold build takes minutes; a cached one returns at once.
EOF
}

image_packages() { sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "${IMAGE_PACKAGES}"; }

image_key() { cat "${IMAGE_PACKAGES}" "${IMAGE_SCRIPT}" | sha256sum | cut -d' ' -f1; }

# image_sources: "URI SUITE" for each bookworm suite of the Debian mirror apt uses on this machine,
# read from apt itself so that both sources.list and deb822 .sources files count.
image_sources() {
  # shellcheck disable=SC2016 # $(SITE) etc. are apt's format fields, not shell
  apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT) $(IDENTIFIER)' 2>/dev/null |
    awk -v s="${IMAGE_SUITE}" '$3 == "main" && $4 == "Packages" && $2 ~ ("^" s "(-updates|-security)?$") { print $1, $2 }' |
    sort -u
}

image_mirror() {
  image_sources | awk -v s="${IMAGE_SUITE}" '$2 == s { print $1; exit }'
}

in_root() {
  local root=$1
  shift
  LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "${root}" "$@"
}

image_debootstrap() {
  local root=$1 mirror=$2
  local log="${root}.debootstrap.log"
  # Only the base system here: debootstrap's own resolver stops on python3-cryptography (virtual
  # python3-cffi-backend-api-max, FIELD-NOTES); apt inside the chroot resolves the rest properly.
  if ! debootstrap --variant=minbase --include=apt-utils,ca-certificates "${IMAGE_SUITE}" "${root}" "${mirror}" >"${log}" 2>&1; then
    tail -n 20 "${log}" >&2
    die "debootstrap ${IMAGE_SUITE} from ${mirror} failed (log above: ${log})"
  fi
}

image_chroot_begin() {
  local root=$1
  printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
  chmod 0755 "${root}/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "${root}/etc/resolv.conf"
  mountpoint -q "${root}/proc" || mount -t proc proc "${root}/proc"
  local uri suite
  : >"${root}/etc/apt/sources.list"
  while read -r uri suite; do
    printf 'deb %s %s main\n' "${uri}" "${suite}" >>"${root}/etc/apt/sources.list"
  done < <(image_sources)
  rm -f "${root}"/etc/apt/sources.list.d/*
}

image_install() {
  local root=$1
  local log="${root}.apt.log"
  local -a packages
  mapfile -t packages < <(image_packages)
  {
    in_root "${root}" apt-get update &&
      in_root "${root}" apt-get install -y --no-install-recommends "${packages[@]}" &&
      in_root "${root}" apt-get dist-upgrade -y
  } >"${log}" 2>&1 || {
    tail -n 30 "${log}" >&2
    die "installing the image packages failed (log above: ${log})"
  }
}

image_configure() {
  local root=$1
  # PostgreSQL: no default cluster; the program creates its own on /srv (pg_createcluster -d).
  if [[ -d "${root}/etc/postgresql/15/main" ]]; then
    in_root "${root}" pg_dropcluster 15 main
  fi
  mkdir -p "${root}/etc/postgresql-common/createcluster.d"
  printf 'create_main_cluster = false\n' >"${root}/etc/postgresql-common/createcluster.d/50-socialcoop.conf"
  in_root "${root}" systemctl disable "${IMAGE_DISABLED_SERVICES[@]}" 2>/dev/null
  # The locale cloud-init sets (en_US.UTF-8), generated now rather than at every first boot.
  sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' "${root}/etc/locale.gen"
  in_root "${root}" locale-gen >/dev/null
  in_root "${root}" update-locale LANG=en_US.UTF-8
  cat >"${root}/etc/cloud/cloud.cfg.d/90-socialcoop-local.cfg" <<'EOF'
# socialcoop local machine: the seed is in /var/lib/cloud/seed/nocloud; the network is set up from
# outside (a veth in the machine's network namespace), so cloud-init leaves it alone.
datasource_list: [ NoCloud, None ]
network: {config: disabled}
manage_etc_hosts: localhost
EOF
  mkdir -p "${root}${IMAGE_APT_REPO}"
  : >"${root}${IMAGE_APT_REPO}/Packages"
  printf 'deb [trusted=yes] file:%s ./\n' "${IMAGE_APT_REPO}" >"${root}/etc/apt/sources.list"
  in_root "${root}" apt-get clean
  rm -rf "${root}"/var/lib/apt/lists/*
  # Every machine makes its own identity at first boot.
  : >"${root}/etc/machine-id"
  rm -f "${root}/var/lib/dbus/machine-id" "${root}"/etc/ssh/ssh_host_*
  printf 'localhost\n' >"${root}/etc/hostname"
}

image_verify() {
  local root=$1
  local log="${root}.verify.log"
  {
    in_root "${root}" apt-get update &&
      in_root "${root}" apt-get install -y "${IMAGE_CLOUD_INIT_PACKAGES[@]}" &&
      in_root "${root}" apt-get dist-upgrade -y
  } >"${log}" 2>&1 || {
    tail -n 20 "${log}" >&2
    die "the image's offline apt check failed (log above: ${log})"
  }
  grep -q '0 newly installed' "${log}" || die "the offline apt check installed something (see ${log})"
}

image_chroot_end() {
  local root=$1
  unmount_below "${root}/proc"
  rm -f "${root}/usr/sbin/policy-rc.d" "${root}/etc/resolv.conf"
  : >"${root}/etc/resolv.conf"
}

image_build() {
  local key=$1
  local tmp root mirror
  mirror=$(image_mirror)
  [[ -n "${mirror}" ]] || die "no ${IMAGE_SUITE} main source in this machine's apt configuration (apt-get indextargets)"
  tmp=$(mktemp -d "${IMAGE_ROOT}/.build-${key:0:12}.XXXXXX")
  root="${tmp}/rootfs"
  progress "image ${key:0:12}: building in ${tmp} from ${mirror}"
  progress "image step 1/5 debootstrap ${IMAGE_SUITE}"
  image_debootstrap "${root}" "${mirror}"
  progress "image step 2/5 install $(image_packages | wc -l) packages"
  image_chroot_begin "${root}"
  image_install "${root}"
  progress "image step 3/5 configure (no PostgreSQL cluster, offline apt, cloud-init NoCloud, no identity)"
  image_configure "${root}"
  progress "image step 4/5 verify that apt works offline"
  image_verify "${root}"
  image_chroot_end "${root}"
  progress "image step 5/5 record and move into place"
  # shellcheck disable=SC2016 # ${Package} is dpkg-query's format field
  in_root "${root}" dpkg-query -W -f '${Package} ${Version}\n' >"${tmp}/packages.lock"
  printf 'key=%s\nmirror=%s\nbuilt=%s\nseconds=%s\n' "${key}" "${mirror}" "$(date -u +%FT%TZ)" "$(elapsed)" >"${tmp}/image.info"
  mv "${tmp}/rootfs".*.log "${tmp}/" 2>/dev/null || true
  mv -T "${tmp}" "${IMAGE_ROOT}/${key}"
  progress "image ${key:0:12}: built"
}

# image_path: builds the image if needed and prints the root filesystem's path.
image_path() {
  local key stale
  local outer_lock=${LOCK_FD}
  require_cmd debootstrap chroot apt-get sha256sum flock
  key=$(image_key)
  mkdir -p "${IMAGE_ROOT}"
  if [[ ! -d "${IMAGE_ROOT}/${key}/rootfs" ]]; then
    lock_wait "${IMAGE_ROOT}/.lock"
    if [[ ! -d "${IMAGE_ROOT}/${key}/rootfs" ]]; then
      # Builds killed earlier: never finished, so never renamed; under the lock nobody else uses them.
      for stale in "${IMAGE_ROOT}"/.build-*; do
        [[ -e "${stale}" ]] || continue
        log_warn "removing an unfinished image build: ${stale}"
        remove_tree "${stale}"
      done
      fault_point image-cleaned
      image_build "${key}"
    fi
    exec {LOCK_FD}>&-
    LOCK_FD=${outer_lock}
  else
    progress "image ${key:0:12}: cached"
  fi
  printf '%s\n' "${IMAGE_ROOT}/${key}/rootfs"
}

cmd_image() {
  image_path
}
