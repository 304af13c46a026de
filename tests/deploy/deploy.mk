# tests/deploy/deploy.mk - the node service as installed and deployed (the
# Makefile includes this file).
#
#   make test        runs tests/run-deploy.sh as one stage (the unit, the
#                    capability set, make install, the man pages, the
#                    manifests); it builds $(BUILD)/tests/pingpong for it
#   make test-deploy builds the container image (deploy/Containerfile) with
#                    podman and checks that it accelerates a connection on
#                    this host: deploy/test-image.sh (several minutes the
#                    first time: it makes a Debian base image)

TEST_BINS += $(BUILD)/tests/pingpong

.PHONY: test-deploy

$(BUILD)/tests/pingpong: tests/deploy/pingpong.c | $(BUILD)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@

test-deploy: all $(BUILD)/tests/pingpong
	$(Q)scripts/setup.sh --deploy
	$(Q)deploy/test-image.sh $(BUILD)
