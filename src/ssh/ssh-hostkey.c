/* The host key: what every client's known_hosts pins. Made once; a key that is
 * there but unusable stops berthd instead of being replaced, since a new key would
 * make every client that knows the old one refuse to connect (or, worse, teach
 * users to accept a changed key). */
#include <fcntl.h>
#include <libssh/libssh.h>
#include <stdio.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/util.h"
#include "ssh/ssh.h"

#define HOSTKEY_FILE_MAX 16384

static int key_fingerprint(ssh_key key, char ret[SSH_FINGERPRINT_MAX])
{
    ssh_key pub = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    int r = -EINVAL;
    if (ssh_pki_export_privkey_to_pubkey(key, &pub) == SSH_OK &&
        ssh_get_publickey_hash(pub, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0) {
        char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
        if (fp && strlen(fp) < SSH_FINGERPRINT_MAX) {
            snprintf(ret, SSH_FINGERPRINT_MAX, "%s", fp);
            r = 0;
        }
        ssh_string_free_char(fp);
    }
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(pub);
    return r;
}

static void pem_free(char *pem)
{
    if (pem) {
        explicit_bzero(pem, strlen(pem));
        free(pem);
    }
}

static int load(const char *path, char **ret_pem, char ret_fingerprint[SSH_FINGERPRINT_MAX], char *why, size_t n)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int r = -errno;
        snprintf(why, n, "cannot open the ssh host key %s: %s", path, strerror(errno));
        return r;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        snprintf(why, n, "the ssh host key %s must be a file of uid %u that only it may read (mode 0600)", path,
                 (unsigned)geteuid());
        return -EINVAL;
    }
    char *pem = NULL;
    size_t len;
    int r = read_file(path, HOSTKEY_FILE_MAX, &pem, &len);
    if (r < 0) {
        snprintf(why, n, "cannot read the ssh host key %s: %s", path, strerror(-r));
        return r;
    }
    ssh_key key = NULL;
    if (ssh_pki_import_privkey_base64(pem, NULL, NULL, NULL, &key) != SSH_OK ||
        ssh_key_type(key) != SSH_KEYTYPE_ED25519 || key_fingerprint(key, ret_fingerprint) < 0) {
        ssh_key_free(key);
        pem_free(pem);
        snprintf(why, n, "the ssh host key %s is damaged or not an unencrypted ed25519 private key; berthd never "
                 "replaces it (clients pin it): restore it from a backup, or remove it to make a new one "
                 "(every client will then see a changed host key)", path);
        return -EINVAL;
    }
    ssh_key_free(key);
    *ret_pem = pem;
    return 0;
}

int ssh_hostkey_load_or_create(const char *path, char **ret_pem, char ret_fingerprint[SSH_FINGERPRINT_MAX],
                               bool *ret_created, char *why, size_t n)
{
    char fp[SSH_FINGERPRINT_MAX];
    char *pem = NULL;
    struct stat st;
    if (lstat(path, &st) == 0 || errno != ENOENT) {
        int r = load(path, &pem, fp, why, n);
        if (r < 0)
            return r;
        *ret_pem = pem;
        memcpy(ret_fingerprint, fp, sizeof(fp));
        *ret_created = false;
        return 0;
    }
    ssh_key key = NULL;
    char *b64 = NULL;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK ||
        ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &b64) != SSH_OK || key_fingerprint(key, fp) < 0) {
        ssh_key_free(key);
        pem_free(b64);
        snprintf(why, n, "cannot make an ed25519 ssh host key");
        return -EIO;
    }
    ssh_key_free(key);
    int r = write_file_atomic(path, b64, strlen(b64), 0600);
    if (r < 0) {
        pem_free(b64);
        snprintf(why, n, "cannot write the ssh host key %s: %s", path, strerror(-r));
        return r;
    }
    *ret_pem = b64;
    memcpy(ret_fingerprint, fp, sizeof(fp));
    *ret_created = true;
    return 0;
}
