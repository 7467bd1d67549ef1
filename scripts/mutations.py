#!/usr/bin/env python3
"""Mutation check: small deliberate bugs that the tests must catch.

Each Mutation names a file, an exact text to find (it must occur exactly once), its
replacement, the test node ids that must fail with the bug in place, and why the bug
matters. The check copies the checkout (the files git tracks, and new ones it does not
ignore) into a scratch directory, confirms the named tests pass there unmutated, then
for each mutation applies it, runs the named tests in the copy (cwd the copy,
PYTHONPATH=<copy>/tests/checkout) and restores the file. Every named test must fail.

It prints a table and exits non-zero when a mutation survived (a named test passed
with the bug in place), when a find text is gone or no longer unique (keep this list
in step with the code), or when a test could not run.

    python scripts/mutations.py           the fast subset (tests/test_mutations.py runs it on CI)
    python scripts/mutations.py --all     every mutation: run by hand before a release
    python scripts/mutations.py NAME ...  the named ones       --list   names, files and why
    python scripts/mutations.py --check   only that every find text and test id still exists
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    why: str
    fast: bool = False          # in the default subset, which CI runs (seconds each)


T = "tests/"
MUTATIONS = [
    # -- the readback meter ------------------------------------------------------------------------
    Mutation("meter-read-unrecorded", "compute/device.py",
             "        self.readback.record(size, label or buffer.label)\n        return bytes(data)",
             "        return bytes(data)",
             (T + "test_readback.py::test_device_meter_counts_every_read_the_engine_makes",),
             "Device.read stops counting: 'zero readback' would be asserted by a meter that sees nothing", fast=True),
    Mutation("meter-async-unrecorded", "compute/device.py",
             "        encoder.copy_buffer_to_buffer(buffer, offset, staging, 0, n)\n        self.readback.record(size, label or buffer.label)\n",
             "        encoder.copy_buffer_to_buffer(buffer, offset, staging, 0, n)\n",
             (T + "test_readback.py::test_device_meter_counts_every_read_the_engine_makes",
              T + "test_engine_kernels.py::test_read_async_arrives_without_blocking"),
             "the frame loop's one read (read_in, and read_async through it) goes uncounted"),
    Mutation("raw-read-of-the-weights-every-frame", "viz/frame.py",
             "    app.dev.submit(encoder)\n    marks.append(",
             "    app.dev.submit(encoder)\n    app.dev.queue.read_buffer(app.model.arena.buffer)\n    marks.append(",
             (T + "test_viz_app.py::test_zero_readback_over_100_frames_of_training_painting_and_inference",),
             "400 KB a frame back to the CPU behind the device meter's back"),
    Mutation("small-raw-read-every-frame", "viz/frame.py",
             "    app.dev.submit(encoder)\n    marks.append(",
             "    app.dev.submit(encoder)\n    app.dev.queue.read_buffer(app.metrics.state.buffer, 0, 32)\n"
             "    marks.append(",
             (T + "test_viz_app.py::test_zero_readback_over_100_frames_of_training_painting_and_inference",),
             "a blocking read a frame, small enough to pass a size check: a GPU -> CPU sync every frame"),
    # -- saves -----------------------------------------------------------------------------------
    Mutation("file-fsync-dropped", "compute/atomic.py",
             "            f.flush()\n            os.fsync(f.fileno())\n", "            f.flush()\n",
             (T + "test_durability.py::test_save_syncs_the_file_before_the_rename_and_the_directory_after",),
             "a crash after the rename can leave an empty checkpoint under the final name", fast=True),
    Mutation("directory-fsync-dropped", "compute/atomic.py",
             "        os.fsync(fd)\n    except OSError:\n        pass", "        pass\n    except OSError:\n        pass",
             (T + "test_durability.py::test_save_syncs_the_file_before_the_rename_and_the_directory_after",),
             "the rename itself may not survive a crash: the old checkpoint comes back"),
    Mutation("ctrl-c-saves-stale-weights", "viz/cli.py",
             "        where = _save_model(args, run, \"interrupted\", interrupted_at_step=run.step)\n",
             "        step = run.step\n        run.restore_snapshot()\n"
             "        where = _save_model(args, run, \"interrupted\", interrupted_at_step=step)\n",
             (T + "test_robustness.py::test_ctrl_c_saves_what_was_trained",
              T + "test_signals.py::test_sigterm_and_sighup_save_the_weights_of_the_steps_counted[SIGTERM]"),
             "Ctrl-C saves the epoch start's weights labelled with the current step"),
    Mutation("signal-stops-at-once", "viz/headless.py",
             "        if self.signum is not None:\n            raise KeyboardInterrupt\n        self.signum = signum",
             "        raise KeyboardInterrupt",
             (T + "test_signals.py::test_sigterm_and_sighup_save_the_weights_of_the_steps_counted[SIGTERM]",),
             "SIGTERM ends the run without saving (or mid-chunk, the step count ahead of the weights)"),
    Mutation("diverged-save-overwrites", "viz/cli.py",
             "    elif run.step == 0:\n", "    elif False:\n",
             (T + "test_signals.py::test_ctrl_c_after_the_divergence_flag_keeps_a_good_save_target",),
             "Ctrl-C after a first-epoch divergence replaces a good checkpoint with untrained weights"),
    Mutation("interrupt-overwrites-save", "viz/cli.py",
             "    if has_content(path) and (partial or not args.overwrite):\n",
             "    if has_content(path) and not args.overwrite:\n",
             (T + "test_signals.py::test_an_interrupt_saves_beside_an_existing_save_target",
              T + "test_signals.py::test_partial_models_take_the_next_free_name_beside_the_target"),
             "Ctrl-C of a run with --overwrite replaces the model trained earlier by half of one"),
    Mutation("save-replaces-unasked", "viz/cli.py",
             "    if not overwrite:\n        return \"the file exists;",
             "    if False:\n        return \"the file exists;",
             (T + "test_hardening_files.py::test_save_never_replaces_a_file_unasked[checkpoint]",),
             "a second run into one --save path replaces the first run's model without a word"),
    # -- the canvas --------------------------------------------------------------------------------
    Mutation("brush-radius-ignored", "shaders/paint.wgsl",
             "let cover = clamp((s.radius + 0.5 * EDGE - d) / EDGE, 0.0, 1.0);",
             "let cover = clamp((4.5 + 0.5 * EDGE - d) / EDGE, 0.0, 1.0);",
             (T + "test_viz_canvas.py::test_brush_radius_sets_the_stroke_width",),
             "the brush size setting and [ ] do nothing", fast=True),
    # -- data --------------------------------------------------------------------------------------
    Mutation("augmentation-off", "shaders/common.wgsl",
             "    return vec2<i32>(i32(h % span) - i32(shift), i32((h / span) % span) - i32(shift));",
             "    return vec2<i32>(i32(h % span) * 0, i32((h / span) % span) * 0);",
             (T + "test_engine_kernels.py::test_shift_augmentation_moves_most_rows_by_offsets_that_vary",),
             "the default recipe's random shifts silently off (98.6% becomes 98.3%)", fast=True),
    Mutation("shift-ignores-the-step", "shaders/common.wgsl",
             "hash_u32(seed ^ hash_u32(step * 7919u + r))", "hash_u32(seed ^ hash_u32(r))",
             (T + "test_engine_kernels.py::test_shift_augmentation_moves_most_rows_by_offsets_that_vary",),
             "batch row r gets the same shift at every step: far less augmentation"),
    Mutation("shuffle-once", "compute/run.py",
             "            if self._shuffled_epoch != epoch:", "            if self._shuffled_epoch is None:",
             (T + "test_run.py::test_every_epoch_has_its_own_permutation",),
             "every epoch sees the batches in the same order", fast=True),
    Mutation("gather-ignores-the-permutation", "shaders/gather.wgsl",
             "if (prm.eval_mode == 0u) { sample = perm[pos]; }", "if (prm.eval_mode == 0u) { sample = pos; }",
             (T + "test_engine_kernels.py::test_gather_through_permutation_with_tail",
              T + "test_training.py::test_training_steps_match_numpy_including_tail_batch[graph]"),
             "the traced step trains in file order, never shuffled"),
    Mutation("compiled-step-ignores-the-permutation", "compute/step_compiler.py",
             "let s = select(0xffffffffu, perm[pos], r0 + t < B && pos < N);",
             "let s = select(0xffffffffu, pos, r0 + t < B && pos < N);",
             (T + "test_training.py::test_training_steps_match_numpy_including_tail_batch[compiled]",),
             "the compiled step trains in file order, never shuffled"),
    # -- schedule and optimizer (shared by both engines: fused-vs-trace cannot see these) ----------
    Mutation("cosine-formula", "shaders/schedule.wgsl",
             "lr = h.min_lr + (h.lr - h.min_lr) * 0.5 * (1.0 + cos(PI * x));",
             "lr = h.min_lr + (h.lr - h.min_lr) * 0.5 * (1.0 + cos(0.5 * PI * x));",
             (T + "test_engine_kernels.py::test_schedule_on_gpu_matches_hand_computed_rates[cosine]",
              T + "test_engine_kernels.py::test_cosine_schedule_matches_pytorch"),
             "the cosine anneals to half way only"),
    Mutation("nesterov-rule", "shaders/optim_rule.wgsl",
             "d = select(m, g + hyper.momentum * m, hyper.nesterov == 1u);",
             "d = select(m, m + hyper.momentum * g, hyper.nesterov == 1u);",
             (T + "test_engine_kernels.py::test_optimizer_matches_numpy[nesterov]",
              T + "test_run.py::test_whole_steps_with_optimizer_and_cosine_schedule_match_numpy[nesterov-wd-compiled]",
              T + "test_run.py::test_whole_steps_with_optimizer_and_cosine_schedule_match_numpy[nesterov-wd-graph]"),
             "the default recipe's optimizer wrong in both engines"),
    Mutation("adam-bias-correction", "shaders/optim_rule.wgsl",
             "let mh = m / (1.0 - pow(hyper.beta1, t));", "let mh = m / (1.0 - pow(hyper.beta1, t + 1.0));",
             (T + "test_engine_kernels.py::test_optimizer_matches_numpy[adam]",
              T + "test_run.py::test_whole_steps_with_optimizer_and_cosine_schedule_match_numpy[adam-compiled]"),
             "Adam's first steps too large"),
    Mutation("weight-decay-dropped", "shaders/optim_rule.wgsl",
             "    let g = grad + hyper.weight_decay * p;", "    let g = grad;",
             (T + "test_engine_kernels.py::test_optimizer_matches_numpy[momentum-wd]",
              T + "test_run.py::test_whole_steps_with_optimizer_and_cosine_schedule_match_numpy[nesterov-wd-compiled]"),
             "--weight-decay does nothing"),
    Mutation("live-optimizer-change-keeps-moments", "compute/run.py",
             "        if new.optimizer != old.optimizer:\n            self.optimizer.reset_state(self.step)\n",
             "        if new.optimizer != old.optimizer:\n            pass\n",
             (T + "test_run.py::test_live_change_from_adam_to_sgd_momentum_starts_fresh[compiled]",),
             "switching Adam -> SGD in the panel starts SGD with Adam's moment as its momentum"),
    Mutation("live-change-not-applied", "compute/run.py",
             "            self._apply(new, rebuild=False)\n", "            self.recipe = new\n",
             (T + "test_run.py::test_live_change_from_adam_to_sgd_momentum_starts_fresh[graph]",),
             "a setting changed in the panel shows but the GPU keeps the old one"),
    # -- gradients -------------------------------------------------------------------------------
    Mutation("row-parts-state-not-read-back", "compute/step_compiler.py",
             "        out += [self._reload(L.n_out, self._next(L).sx, L.act_out, atomic=False) for L in self.layers[:-1]]",
             "        out += []",
             (T + "test_step_compiler.py::test_row_parts[2-parts-sgd-cosine]",),
             "a row's parts see zeros where the other parts' outputs belong (CPU phases)"),
    Mutation("gemm-chunk-not-advanced", "compute/step_compiler.py",
             "let row = c0 + {C}u + lrow;     // the next chunk's loads",
             "let row = c0 + lrow;     // the next chunk's loads",
             (T + "test_step_compiler.py::test_pass2_staged_gemm[8-130-None]",),
             "pass 2's GEMM sums the first chunk of rows over and over: the wrong weight gradient"),
    Mutation("submissions-double", "compute/run.py",
             "max(FIRST_CHUNK, int(queued * RAMP))",
             "max(FIRST_CHUNK, queued)",
             (T + "test_run.py::test_submissions_grow_with_the_queue_ahead_of_them",),
             "run_steps doubles its submissions again: the GPU idles while Python encodes each one"),
    Mutation("loss-by-class-row-max-skipped", "compute/step_compiler.py",
             "for (var k = 1u; k < {c}u; k++) {{ let v = act[z0 + k]; if (v > m) {{ m = v; best = k; }} }}",
             "for (var k = 1u; k < {c}u; k++) {{ let v = act[z0 + k]; if (v > m) {{ best = k; }} }}",
             (T + "test_step_compiler.py::test_optimizers_and_schedules[sgd]",),
             "pass 1's loss by class keeps the first logit as the row's max: exp overflows, the accuracy is wrong"),
    Mutation("label-early-of-another-row", "compute/step_compiler.py",
             "label_word = labels[s >> 2u];",
             "label_word = labels[(s + 4u) >> 2u];",
             (T + "test_step_compiler.py::test_optimizers_and_schedules[sgd]",
              T + "test_step_compiler.py::test_rows_per_workgroup[3]"),
             "pass 1's early label load reads another sample's label: the loss and its gradient of the wrong class"),
    Mutation("update-old-weights-transposed", "compute/step_compiler.py",
             'return self._olds([f"p + {kk * L.n_out + c}u" for kk in range(4) for c in range(4)], cond)',
             'return self._olds([f"p + {kk * L.n_out + c}u" for c in range(4) for kk in range(4)], cond)',
             (T + "test_step_compiler.py::test_pass2_staged_gemm[8-130-None]",
              T + "test_step_compiler.py::test_large_batches_split_the_weight_gradient_rows[200]"),
             "pass 2's preloaded old weights of a 4 x 4 tile in the wrong slots: each weight moves from another's value"),
    Mutation("update-old-weights-shifted", "compute/step_compiler.py",
             '[f"p + {c * L.n_out}u" for c in (1, 2, 3)]',
             '[f"p + {c * L.n_out}u" for c in (2, 1, 3)]',
             (T + "test_step_compiler.py::test_optimizers_and_schedules[sgd]",),
             "pass 2's vec4-column weights updated from their neighbours' old values"),
    Mutation("order-ahead-kept-over-restart", "compute/run.py",
             "        self._shuffled_epoch = None\n        self._order_ahead = None\n",
             "        self._shuffled_epoch = None\n",
             (T + "test_run.py::test_orders_drawn_ahead_are_the_seeds_orders",),
             "a restarted run's first epoch takes the order drawn ahead for the old run: not the seed's", fast=True),
    Mutation("order-ahead-kept-over-seed-change", "compute/run.py",
             "                self._rng = np.random.default_rng(new.seed)\n                self._order_ahead = None\n",
             "                self._rng = np.random.default_rng(new.seed)\n",
             (T + "test_run.py::test_orders_drawn_ahead_are_the_seeds_orders",),
             "a new seed's first epoch takes an order drawn from the old seed"),
    Mutation("frame-split-not-submitted", "viz/frame.py",
             "        app.dev.submit(current[0])\n        current[0] = app.dev.device.create_command_encoder()\n",
             "",
             (T + "test_viz_ux.py::test_a_frames_steps_go_on_past_an_epochs_end",),
             "a frame going on past an epoch's end writes the next epoch's order before the last steps run"),
    Mutation("epoch-order-written-directly", "compute/data.py",
             "        dev.write(self._orders[slot], perm)\n"
             "        encoder.copy_buffer_to_buffer(self._orders[slot], 0, self.perm, 0, self.train.n * 4)\n",
             "        dev.write(self.perm, perm)\n",
             (T + "test_viz_ux.py::test_a_frames_steps_go_on_past_an_epochs_end",),
             "a frame's next epoch order overwrites the one its earlier steps still have to read"),
    Mutation("view-scale-first-share-only", "shaders/views.wgsl",
             "if (lid.x == 0u && partial[0] > 0.0) { atomicMax(&red_acc[red.slot], bitcast<u32>(partial[0])); }",
             "if (lid.x == 0u && partial[0] > 0.0 && wg.x == 0u) { atomicMax(&red_acc[red.slot], bitcast<u32>(partial[0])); }",
             (T + "test_viz_views.py::test_scale_is_the_largest_finite_magnitude[400003-1]",),
             "a view's colour scale from the first workgroup's share only: saturated colours", fast=True),
    Mutation("compiled-bias-gradient-dropped", "compute/step_compiler.py",
             '            term = f"scratch[{L.sdz}u + b * {L.n_out}u + p]"',
             '            term = "0.0"',
             (T + "test_training.py::test_training_steps_match_numpy_including_tail_batch[compiled]",
              T + "test_run.py::test_whole_steps_with_optimizer_and_cosine_schedule_match_numpy[nesterov-wd-compiled]"),
             "the hidden biases never learn (the subset-learning test still reaches 90%)"),
    Mutation("traced-bias-gradient-dropped", "compute/ops.py",
             "                gb, acc = b.grad_target()\n                sum_rows_into(g, gb, m, n, acc)\n",
             "                gb, acc = b.grad_target()\n",
             (T + "test_training.py::test_training_steps_match_numpy_including_tail_batch[graph]",
              T + "test_run.py::test_deeper_network_steps_match_numpy[graph]"),
             "no bias of a Linear layer learns in the traced step"),
    Mutation("dropout-scaling", "shaders/dropout.wgsl",
             "let v = select(0.0, x[i] / (1.0 - prm.p), keep);",
             "let v = select(0.0, x[i] / (1.0 - 0.5 * prm.p), keep);",
             (T + "test_run.py::test_dropout_network_gradients_match_numpy",
              T + "test_kernels.py::test_dropout_mask_statistics_and_backward"),
             "inverted dropout scaled wrong: training and evaluation see different activations"),
    Mutation("dropout-at-evaluation", "compute/evaluation.py",
             "self.logits = model.forward(self.x, train=False)",
             "self.logits = model.forward(self.x, train=True, state=metrics.state)",
             (T + "test_run.py::test_dropout_is_off_at_evaluation",),
             "a dropout model is scored with units dropped: a lower, noisy test accuracy"),
    # -- divergence restore ----------------------------------------------------------------------
    Mutation("restore-copies-the-wrong-way", "compute/run.py",
             "        self.model.restore_from(enc, self.snapshot)",
             "        enc.copy_buffer_to_buffer(self.model.arena.buffer, 0, self.snapshot, 0, self.model.arena.size * 4)",
             (T + "test_run.py::test_restore_snapshot_puts_back_the_epoch_start_exactly",
              T + "test_viz_app.py::test_divergence_is_noticed_and_the_last_good_weights_restored"),
             "'restored the last good weights' while the diverged ones stay"),
    Mutation("restore-keeps-the-flag", "compute/run.py",
             "self.metrics.write_state(step=self.step, step_snap=self.step, flags=0, loss_ema=0, over=0)",
             "self.metrics.write_state(step=self.step, step_snap=self.step, loss_ema=0, over=0)",
             (T + "test_run.py::test_restore_snapshot_puts_back_the_epoch_start_exactly",
              T + "test_viz_app.py::test_training_resumes_cleanly_after_restoring_from_divergence"),
             "after a restore the GPU keeps skipping every update: training looks resumed but never moves"),
    Mutation("restore-keeps-the-moments", "compute/run.py",
             "        self.step = step\n        self.optimizer.reset_state(self.step)\n",
             "        self.step = step\n",
             (T + "test_run.py::test_restore_snapshot_puts_back_the_epoch_start_exactly",),
             "the diverged run's momentum pushes the restored weights straight back out"),
    # -- time travel and histograms ---------------------------------------------------------------
    Mutation("timeline-snapshot-at-the-frame-end", "viz/session.py",
             "            chunk = min([n - done] + [o.every - steps % o.every for o in self.observers])\n",
             "            chunk = n - done\n",
             (T + "test_viz_timetravel.py::test_snapshot_ring_holds_exactly_the_weights_at_its_steps",),
             "a frame's steps are not split: snapshots and histogram columns of whatever step a frame ends at"),
    Mutation("timeline-views-read-the-live-arena", "viz/app.py",
             "        forward = Forward(timeline.display, self.canvas.x)\n",
             "        forward = Forward(model, self.canvas.x)\n",
             (T + "test_viz_timetravel.py::test_views_at_a_past_step_are_the_views_of_a_model_loaded_with_its_weights",),
             "the activations and the prediction stay live while the slider shows a past step"),
    Mutation("histogram-bin-rounds", "shaders/histogram.wgsl",
             "let k = clamp(i32(floor(x * per)) + half, 0, i32(nb) - 1);",
             "let k = clamp(i32(round(x * per)) + half, 0, i32(nb) - 1);",
             (T + "test_viz_histograms.py::test_histogram_columns_equal_numpys_histogram_of_the_same_weights",),
             "every value lands half a bin off: the ribbons look right and count wrong"),
    Mutation("histogram-sums-kept", "shaders/histogram.wgsl",
             "let c = atomicExchange(&hb_acc[b], 0u);",
             "let c = atomicLoad(&hb_acc[b]);",
             (T + "test_viz_histograms.py::test_histogram_columns_equal_numpys_histogram_of_the_same_weights",),
             "the workgroups' sums are never cleared: every column counts all the columns before it too"),
    Mutation("snapshot-while-exploding", "shaders/snapshot.wgsl",
             "if (atomicLoad(&state.flags) != 0u || atomicLoad(&state.over) != 0u) { return; }",
             "if (atomicLoad(&state.flags) != 0u) { return; }",
             (T + "test_divergence.py::test_epochs_shorter_than_the_detector_restore_the_last_healthy_snapshot",),
             "an epoch that starts inside the 50 steps before the flag keeps exploded weights as the last good ones",
             fast=True),
    # -- device limits ---------------------------------------------------------------------------
    Mutation("batch-unchecked", "compute/budget.py",
             "    if rows <= most:\n        return\n", "    if True:\n        return\n",
             (T + "test_limits.py::test_one_past_the_limit_names_the_largest_value_that_fits",
              T + "test_limits.py::test_too_wide_and_too_large_batches_name_the_largest_that_fits"),
             "--batch-size past the binding limit ends in a GPUValidationError traceback"),
    Mutation("data-suggestion-off-by-one", "compute/budget.py",
             "use {option} {largest(fits, n)} or less", "use {option} {largest(fits, n) + 1} or less",
             (T + "test_limits.py::test_one_past_the_limit_names_the_largest_value_that_fits",),
             "the --limit / --test-limit a refusal suggests does not fit either"),
    Mutation("recipe-checked-in-float64", "compute/recipe.py",
             "    return struct.unpack(\"<f\", struct.pack(\"<f\", x))[0]", "    return float(x)",
             (T + "test_cli_numbers.py::test_bad_numbers_are_one_line_before_the_gpu[--gamma 1e-50]",
              T + "test_cli_numbers.py::test_bad_numbers_are_one_line_before_the_gpu[--momentum 0.99999999999]"),
             "gamma 1e-50 is 0 on the GPU (the rate drops to 0 after a period); momentum 0.99999999999 is 1.0",
             fast=True),
    # -- metrics and evaluation ------------------------------------------------------------------
    Mutation("history-ring-does-not-wrap", "shaders/step_metrics.wgsl",
             "let slot = atomicLoad(&state.run_step) % cap;", "let slot = min(atomicLoad(&state.run_step), cap - 1u);",
             (T + "test_run.py::test_history_ring_wraps_around_at_its_capacity[compiled]",
              T + "test_run.py::test_history_ring_wraps_around_at_its_capacity[graph]"),
             "after 65,536 steps the curves freeze"),
    Mutation("read-history-does-not-wrap", "compute/metrics.py",
             "            slot = s % HISTORY_CAP\n", "            slot = min(s, HISTORY_CAP - 1)\n",
             (T + "test_run.py::test_history_ring_wraps_around_at_its_capacity[compiled]",),
             "the CLI's epoch loss is wrong past 65,536 steps"),
    Mutation("confusion-transposed", "shaders/eval.wgsl",
             "atomicAdd(&counters[3u + y * prm.C + best], 1u);", "atomicAdd(&counters[3u + best * prm.C + y], 1u);",
             (T + "test_training.py::test_evaluation_matches_numpy",),
             "the confusion matrix shows predictions as truths"),
    # -- keys and pacing -------------------------------------------------------------------------
    Mutation("brush-keys-swapped", "viz/actions.py",
             'Binding(("[",), Action.BRUSH_SMALLER, "smaller brush"),',
             'Binding(("[",), Action.BRUSH_LARGER, "smaller brush"),',
             (T + "test_viz_app.py::test_every_shortcut_in_the_keymap_does_what_the_help_says",),
             "[ makes the brush larger, as the help says ] does"),
    Mutation("ctrl-ignored", "viz/input.py",
             'action = action_for_key(ev.get("key", ""), ctrl="Control" in modifiers)',
             'action = action_for_key(ev.get("key", ""))',
             (T + "test_viz_app.py::test_every_shortcut_in_the_keymap_does_what_the_help_says",),
             "Ctrl+Q does not quit"),
    Mutation("pacer-never-slows-down", "viz/pacing.py",
             "max(self.steps * self.SHRINK, want)",
             "max(self.steps, want)",
             (T + "test_pacing.py::test_adaptive_budget_settles_where_the_frame_meets_its_time",),
             "at speed 'max' the frame time grows without bound: the window freezes", fast=True),
    Mutation("pacer-ignores-the-gpu", "viz/pacing.py",
             '                self.gpu_cost = self._blend("gpu", self.gpu_cost, gpu_s / steps_done)',
             "                pass",
             (T + "test_pacing.py::test_budget_holds_through_epoch_ends_and_late_gpu_times",),
             "frames sized by the CPU's cost alone: the GPU falls behind and the frame rate with it", fast=True),
    Mutation("pacer-ignores-extras", "viz/pacing.py",
             "        if cost <= 0 or not each:\n",
             "        if True:\n",
             (T + "test_pacing.py::test_extras_are_charged_to_the_frames_that_carry_them",),
             "a frame that also takes an estimate or a histogram column runs a full budget of steps on "
             "top of it: the CNN's window drops below 60 fps", fast=True),
    Mutation("pacer-charges-every-extra", "viz/pacing.py",
             "if c > 0 and (k in self.ALWAYS_CHARGED or self.share.get(k, 0.0) < self.RARE)}",
             "if c > 0}",
             (T + "test_pacing.py::test_extras_in_every_frame_stay_in_the_cost_of_a_step",),
             "an MLP's histogram column in every frame leaves none to learn a step's cost from: "
             "the window trains at a seventh of its speed", fast=True),
    Mutation("evaluation-not-planned", "viz/session.py",
             '            out["evaluation"] = ends * len(run.evaluation.pieces)',
             '            out["evaluation"] = 0',
             (T + "test_viz_ux.py::test_an_epochs_evaluation_takes_the_frames_its_cost_allows",),
             "a frame's steps run up to an epoch's end whatever its evaluation costs: the window stalls there"),
    Mutation("evaluation-all-at-once", "viz/pacing.py",
             "        return max(least, min(most, int(left / each)))",
             "        return most",
             (T + "test_pacing.py::test_evaluation_pieces_take_the_rest_of_a_frame",),
             "a large CNN's whole evaluation in one frame: the window stalls 120 ms every epoch", fast=True),
    Mutation("pacer-follows-stalls", "viz/pacing.py",
             "        if new > self.OUTLIER * old and key not in self._struck:\n",
             "        if False:\n",
             (T + "test_pacing.py::test_a_stalled_frame_does_not_cut_the_next_frames_steps",),
             "one stalled frame cuts the steps of the frames after it by a third", fast=True),
    Mutation("pacer-clamps-every-rise", "viz/pacing.py",
             "        if new > self.OUTLIER * old and key not in self._struck:\n",
             "        if new > self.OUTLIER * old:\n",
             (T + "test_pacing.py::test_a_stalled_frame_does_not_cut_the_next_frames_steps",),
             "a larger batch overruns ten frames before the steps follow"),
    Mutation("fence-wakes-the-blocking-poller", "viz/pacing.py",
             "        poller = FencePoller.of(dev.device)\n",
             "        poller = FencePoller.of(dev.device)\n        self._token = dev.device._poller.get_token()\n",
             (T + "test_pacing.py::test_frame_fence_bounds_frames_in_flight_and_reads_nothing_back",),
             "wgpu-py's blocking polls hold up every frame's submission until the GPU drains"),
    Mutation("garbage-frozen-forever", "viz/pacing.py",
             "    gc.unfreeze()\n    gc.collect()\n", "    gc.collect()\n",
             (T + "test_pacing.py::test_settled_garbage_in_cycles_is_freed_at_the_next_settle",),
             "a replaced model's views stay frozen in memory with their GPU buffers", fast=True),
    Mutation("garbage-never-frozen", "viz/pacing.py",
             "    gc.collect()\n    gc.freeze()\n", "    gc.collect()\n",
             (T + "test_viz_app.py::test_the_apps_objects_are_frozen_and_a_replaced_models_views_freed",),
             "every full garbage collection walks the app's objects: a 15 ms stall, a dropped frame"),
    Mutation("slow-speeds-step-every-frame", "viz/pacing.py",
             "return 1 if frame % -n == 0 else 0", "return 1",
             (T + "test_pacing.py::test_fixed_speeds_give_their_steps_per_frame",),
             "'1 step / 60 frames' runs 60 times too fast"),
]


# -- the scratch copy -----------------------------------------------------------------------------
def checkout_files(root: Path) -> list[str]:
    """The files git tracks, and new ones it does not ignore (those that exist)."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


def make_copy(root: Path, dest: Path) -> None:
    for rel in checkout_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def problem(m: Mutation, root: Path) -> str | None:
    """Why the mutation cannot be applied to the code at root (None: it can)."""
    path = root / m.file
    if not path.is_file():
        return f"{m.file} does not exist"
    n = path.read_text().count(m.find)
    return None if n == 1 else f"the find text occurs {n} times in {m.file} (must be once)"


# -- running tests ----------------------------------------------------------------------------------
@dataclass
class Result:
    outcomes: dict          # node id -> "passed" | "failed" | "skipped" | "missing"
    rc: int
    seconds: float
    first_failure: str      # the first failure's message, one line
    tail: str               # the end of pytest's output


def run_tests(copy: Path, nodes: tuple[str, ...], timeout: float) -> Result:
    report = copy / ".mutation-report.xml"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", f"--junitxml={report}",
           *nodes]
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", *cmd]
    env = dict(os.environ, PYTHONPATH=str(copy / "tests" / "checkout"), PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("XDG_RUNTIME_DIR", "/tmp")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        rc, tail = p.returncode, (p.stdout + p.stderr)[-3000:]
    except subprocess.TimeoutExpired as e:
        rc, tail = -1, f"timed out after {timeout:.0f} s\n" + str(e.stdout or "")[-2000:]
    seconds = time.perf_counter() - t0
    outcomes = {n: "missing" for n in nodes}
    first = ""
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if case.find("skipped") is not None:
                outcome = "skipped"
            elif bad is not None:
                outcome = "failed"
                if not first:
                    first = ((bad.get("message") or bad.text or "").strip().splitlines() or [""])[0][:100]
            else:
                outcome = "passed"
            for n in outcomes:   # a parametrized test named without its parameters: any case counts
                if node == n or node.startswith(n + "["):
                    outcomes[n] = max(outcomes[n], outcome, key=RANK.index)
    return Result(outcomes, rc, seconds, first, tail)


RANK = ["missing", "skipped", "passed", "failed"]     # how one named test's cases combine


# -- the check -------------------------------------------------------------------------------------
def select(args) -> list[Mutation]:
    if args.names:
        known = {m.name: m for m in MUTATIONS}
        unknown = [n for n in args.names if n not in known]
        if unknown:
            sys.exit(f"unknown mutation(s): {', '.join(unknown)} (--list shows them)")
        return [known[n] for n in args.names]
    return list(MUTATIONS) if args.all else [m for m in MUTATIONS if m.fast]


def check_only(mutations: list[Mutation]) -> int:
    """Every find text applies to today's code and every named test exists (no test is run)."""
    bad = [f"{m.name}: {problem(m, ROOT)}" for m in mutations if problem(m, ROOT)]
    nodes = sorted({n for m in mutations for n in m.tests})
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "checkout"))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                        "-o", "addopts=", *nodes], cwd=ROOT, env=env, capture_output=True, text=True)
    collected = {line.strip() for line in p.stdout.splitlines()}
    bad += [f"test not found: {n}" for n in nodes
            if n not in collected and not any(c.startswith(n + "[") for c in collected)]
    for line in bad:
        print(line)
    print(f"{len(mutations)} mutations, {len(nodes)} tests: " + ("all present" if not bad else f"{len(bad)} problems"))
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="mutations to run (default: the fast subset)")
    ap.add_argument("--all", action="store_true", help="every mutation")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--check", action="store_true", help="only check that find texts and tests still exist")
    ap.add_argument("--no-baseline", action="store_true", help="skip running the tests on the unmutated copy")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run (default 900)")
    args = ap.parse_args(argv)
    mutations = select(args)
    if args.list:
        for m in mutations:
            print(f"{m.name:38} {m.file:26} {'fast' if m.fast else '    '}  {m.why}")
        return 0
    if args.check:
        return check_only(mutations)

    scratch = Path(tempfile.mkdtemp(prefix="mnist-viz-mutations-"))
    copy = scratch / "checkout"
    try:
        make_copy(ROOT, copy)
        print(f"scratch copy: {copy} ({len(mutations)} mutations)", flush=True)
        if not args.no_baseline:
            nodes = tuple(sorted({n for m in mutations for n in m.tests}))
            base = run_tests(copy, nodes, args.timeout * 2)
            broken = [n for n, o in base.outcomes.items() if o != "passed"]
            print(f"baseline: {len(nodes)} tests in {base.seconds:.0f} s: "
                  + ("all pass" if not broken else f"{len(broken)} do not pass"), flush=True)
            if broken:
                print("\n".join(f"  {base.outcomes[n]}: {n}" for n in broken) + "\n" + base.tail)
                print("the tests must pass without any mutation first")
                return 2
        rows, bad = [], 0
        for m in mutations:
            why_not = problem(m, copy)
            if why_not:
                rows.append((m, "STALE", "", 0.0, why_not))
                bad += 1
                print(f"  {m.name}: STALE ({why_not})", flush=True)
                continue
            path = copy / m.file
            original = path.read_bytes()
            path.write_text(original.decode().replace(m.find, m.replace))
            try:
                r = run_tests(copy, m.tests, args.timeout)
            finally:
                path.write_bytes(original)
            caught = [n for n in m.tests if r.outcomes[n] == "failed"]
            missing = [n for n in m.tests if r.outcomes[n] in ("missing", "skipped")]
            if missing or r.rc not in (0, 1):
                status, note = "ERROR", f"could not run: {', '.join(missing) or 'pytest exit ' + str(r.rc)}"
            elif len(caught) == len(m.tests):
                status, note = "caught", r.first_failure
            else:
                status = "SURVIVED"
                note = "passed with the bug: " + ", ".join(n.split("::")[-1] for n in m.tests if n not in caught)
            bad += status != "caught"
            rows.append((m, status, f"{len(caught)}/{len(m.tests)}", r.seconds, note))
            print(f"  {m.name}: {status} ({len(caught)}/{len(m.tests)} tests, {r.seconds:.0f} s)", flush=True)
            if status == "ERROR":
                print(r.tail)
        print()
        print(f"{'mutation':38} {'file':26} {'result':8} {'tests':5} {'s':>4}  first failure / note")
        for m, status, tests, seconds, note in rows:
            print(f"{m.name:38} {m.file:26} {status:8} {tests:5} {seconds:4.0f}  {note[:110]}")
        print(f"\n{len(rows) - bad} of {len(rows)} mutations caught")
        return 1 if bad else 0
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
