package dev.lathe.train;

import dev.lathe.LatheException;
import dev.lathe.model.ModelConfig;
import dev.lathe.model.RopeStyle;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class TrainerTest {
    static final ModelConfig TINY = new ModelConfig("llama", 32, 2, 4, 2, 8, 64, 259, 1e-5f, 10000f, RopeStyle.HALF, null,
            64, false, false);
    static final String TEXT = "the quick brown fox jumps over the lazy dog. ".repeat(40);
    static final int[] TOKENS = TextEncoder.bytes(3).encode(TEXT);

    @TempDir
    Path dir;

    static TrainConfig.Builder base() {
        return TrainConfig.builder().seqLen(32).batchSize(4).steps(40).lr(1e-2).minLr(1e-3).warmupSteps(4)
                .weightDecay(0.01).clipNorm(1.0).seed(7);
    }

    private static Trainer trainer(TrainConfig cfg, long initSeed, Loss loss) {
        return new Trainer(TrainModel.init(TINY, initSeed, true), cfg, loss, TOKENS, null, 0);
    }

    @Test
    void lossFallsOnRepetitiveTextAndTheSameSeedGivesIdenticalParameters() {
        List<Double> losses = new ArrayList<>();
        Trainer a = trainer(base().build(), 11, new CrossEntropyLoss());
        a.run(new TrainListener() {
            @Override
            public void onStep(StepInfo s) {
                losses.add(s.loss());
                assertThat(s.tokensPerSecond()).isPositive();
                assertThat(s.eta().isNegative()).isFalse();
            }
        });
        assertThat(losses).hasSize(40);
        assertThat(losses.get(0)).isBetween(5.0, 6.0); // about ln 259
        assertThat(losses.get(39)).isLessThan(1.5);
        Trainer b = trainer(base().build(), 11, new CrossEntropyLoss());
        b.run(null);
        for (int i = 0; i < a.model().params().size(); i++) {
            assertThat(b.model().params().get(i).data()).as(a.model().params().get(i).name())
                    .containsExactly(a.model().params().get(i).data());
        }
        Trainer c = trainer(base().seed(8).build(), 11, new CrossEntropyLoss());
        c.runUntil(3, null);
        Trainer a3 = trainer(base().build(), 11, new CrossEntropyLoss());
        a3.runUntil(3, null);
        assertThat(c.model().params().get(0).data()).isNotEqualTo(a3.model().params().get(0).data());
    }

    @Test
    void twoMicroBatchesEqualOneBatchOfTwo() {
        TrainModel m = TrainModel.init(TINY, 5, false);
        int t = 16;
        int[] in = new int[2 * t], tg = new int[2 * t];
        System.arraycopy(TOKENS, 0, in, 0, t);
        System.arraycopy(TOKENS, 1, tg, 0, t);
        System.arraycopy(TOKENS, 100, in, t, t);
        System.arraycopy(TOKENS, 101, tg, t, t);
        tg[3] = CrossEntropyLoss.DEFAULT_IGNORE_INDEX; // uneven target counts per micro-batch
        Loss ce = new CrossEntropyLoss();
        int total = ce.count(tg, 2 * t);
        m.zeroGrad();
        double whole = m.forwardBackward(in, tg, 2, t, ce, 1f / total);
        List<float[]> g1 = new ArrayList<>();
        for (TrainModel.Param p : m.params()) g1.add(p.grad().clone());
        m.zeroGrad();
        double parts = m.forwardBackward(java.util.Arrays.copyOfRange(in, 0, t), java.util.Arrays.copyOfRange(tg, 0, t), 1, t, ce, 1f / total)
                + m.forwardBackward(java.util.Arrays.copyOfRange(in, t, 2 * t), java.util.Arrays.copyOfRange(tg, t, 2 * t), 1, t, ce, 1f / total);
        assertThat(parts).isCloseTo(whole, org.assertj.core.data.Offset.offset(1e-9 * Math.abs(whole)));
        for (int i = 0; i < g1.size(); i++) {
            float[] e = g1.get(i), g = m.params().get(i).grad();
            double max = 0, err = 0;
            for (int j = 0; j < e.length; j++) {
                max = Math.max(max, Math.abs(e[j]));
                err = Math.max(err, Math.abs(e[j] - g[j]));
            }
            assertThat(max).isPositive();
            assertThat(err / max).as(m.params().get(i).name()).isLessThan(1e-5);
        }
        // the trainer: accumulation 2 × batch 1 sees the same data and loss as 1 × batch 2
        List<Double> l1 = new ArrayList<>(), l2 = new ArrayList<>();
        trainer(base().batchSize(1).gradAccumSteps(2).steps(3).build(), 3, ce).run(listener(l1));
        trainer(base().batchSize(2).gradAccumSteps(1).steps(3).build(), 3, ce).run(listener(l2));
        assertThat(l1.get(0)).isCloseTo(l2.get(0), org.assertj.core.data.Offset.offset(1e-6));
        assertThat(l1.get(2)).isCloseTo(l2.get(2), org.assertj.core.data.Offset.offset(1e-3));
    }

    private static TrainListener listener(List<Double> sink) {
        return new TrainListener() {
            @Override
            public void onStep(StepInfo s) {
                sink.add(s.loss());
            }
        };
    }

    @Test
    void resumeFromCheckpointIsBitIdentical() {
        TrainConfig cfg = base().steps(24).build();
        Trainer straight = trainer(cfg, 21, new CrossEntropyLoss());
        straight.run(null);

        Path ck = dir.resolve("run.ckpt");
        TrainConfig withCk = cfg.toBuilder().checkpointEvery(8).checkpointPath(ck).build();
        List<Long> saved = new ArrayList<>();
        Trainer first = trainer(withCk, 21, new CrossEntropyLoss());
        first.runUntil(18, new TrainListener() {
            @Override
            public void onCheckpoint(long step, Path file) {
                saved.add(step);
            }
        });
        assertThat(saved).containsExactly(8L, 16L);
        Checkpoint.State s = Checkpoint.load(ck);
        assertThat(s.step()).isEqualTo(16);
        assertThat(s.dataEpoch()).isEqualTo(1); // 56 sequences / 4 per step: the epoch turned at step 14

        Trainer resumed = Trainer.resume(ck, withCk, new CrossEntropyLoss(), TOKENS, null, 0);
        assertThat(resumed.step()).isEqualTo(16);
        resumed.run(null);
        assertThat(resumed.step()).isEqualTo(24);
        for (int i = 0; i < straight.model().params().size(); i++) {
            assertThat(resumed.model().params().get(i).data()).as(straight.model().params().get(i).name())
                    .containsExactly(straight.model().params().get(i).data());
        }
        // no temporary files left behind
        try (var files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString()).toList()).containsExactly("run.ckpt");
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void corruptOrTruncatedCheckpointIsRejected() throws IOException {
        Path ck = dir.resolve("c.ckpt");
        Trainer t = trainer(base().steps(2).build(), 1, new CrossEntropyLoss());
        t.run(null);
        t.saveCheckpoint(ck);
        assertThat(Checkpoint.load(ck).step()).isEqualTo(2);
        byte[] good = Files.readAllBytes(ck);

        byte[] flipped = good.clone();
        flipped[good.length / 2] ^= 0x10;
        Files.write(ck, flipped);
        assertThatThrownBy(() -> Checkpoint.load(ck)).isInstanceOf(LatheException.class)
                .hasMessageContaining(ck.toString()).hasMessageContaining("checksum");
        assertThatThrownBy(() -> Trainer.resume(ck, base().steps(2).build(), new CrossEntropyLoss(), TOKENS, null, 0))
                .isInstanceOf(LatheException.class).hasMessageContaining(ck.toString());

        Files.write(ck, java.util.Arrays.copyOf(good, good.length - 100));
        assertThatThrownBy(() -> Checkpoint.load(ck)).isInstanceOf(LatheException.class)
                .hasMessageContaining(ck.toString()).hasMessageContaining("truncated");

        byte[] magic = good.clone();
        magic[0] = 'X';
        Files.write(ck, magic);
        assertThatThrownBy(() -> Checkpoint.load(ck)).isInstanceOf(LatheException.class).hasMessageContaining("magic");

        Files.write(ck, new byte[10]);
        assertThatThrownBy(() -> Checkpoint.load(ck)).isInstanceOf(LatheException.class).hasMessageContaining(ck.toString());
    }

    @Test
    void nonFiniteLossStopsTrainingAndKeepsTheLastCheckpoint() throws IOException {
        Path ck = dir.resolve("nan.ckpt");
        Loss ce = new CrossEntropyLoss();
        int[] calls = {0}, prepared = {0};
        Loss poisoned = new Loss() {
            @Override
            public void prepare(int[] inputs, int[] targets, int batch, int seqLen) {
                assertThat(batch).isEqualTo(4);
                assertThat(seqLen).isEqualTo(32);
                assertThat(targets[0]).isEqualTo(inputs[1]); // targets are the inputs shifted by one
                prepared[0]++;
            }

            @Override
            public double sum(float[] logits, int rows, int vocab, int[] targets, float[] grad, float gradScale) {
                double s = ce.sum(logits, rows, vocab, targets, grad, gradScale);
                return ++calls[0] == 5 ? Double.NaN : s;
            }

            @Override
            public int count(int[] targets, int rows) {
                return ce.count(targets, rows);
            }
        };
        Trainer t = trainer(base().steps(10).checkpointEvery(2).checkpointPath(ck).build(), 1, poisoned);
        assertThatThrownBy(() -> t.run(null)).isInstanceOf(LatheException.class)
                .hasMessageContaining("non-finite loss").hasMessageContaining("step 5").hasMessageContaining(ck.toString());
        assertThat(t.step()).isEqualTo(4);
        assertThat(prepared[0]).isEqualTo(calls[0]);
        Checkpoint.State s = Checkpoint.load(ck);
        assertThat(s.step()).isEqualTo(4);
        assertThat(s.tensor(ck, "param/token_embd.weight")).containsExactly(t.model().param("token_embd.weight").data());
    }

    @Test
    void validationLossAndBitsPerByteScoreEveryByteOnce() {
        int[] val = TextEncoder.bytes(3).encode("a validation text of some length, not a multiple of the sequence length!");
        Trainer t = new Trainer(TrainModel.init(TINY, 2, false), base().steps(1).build(), new CrossEntropyLoss(), TOKENS, val, val.length);
        TrainListener.ValidationInfo v = t.validate();
        assertThat(v.tokens()).isEqualTo(val.length - 1);
        assertThat(v.loss()).isBetween(5.0, 6.0);
        assertThat(v.bitsPerByte()).isCloseTo(v.loss() * (val.length - 1) / Math.log(2) / val.length, org.assertj.core.data.Offset.offset(1e-9));
        // the same NLL computed directly, one sequence per position block
        TrainModel m = t.model();
        int[] in = java.util.Arrays.copyOf(val, val.length - 1), tg = java.util.Arrays.copyOfRange(val, 1, val.length);
        double direct = m.lossSum(in, tg, 1, in.length, new CrossEntropyLoss());
        assertThat(direct).isPositive();
        List<TrainListener.ValidationInfo> seen = new ArrayList<>();
        Trainer t2 = new Trainer(TrainModel.init(TINY, 2, false), base().steps(2).evalEvery(1).build(), new CrossEntropyLoss(), TOKENS, val, val.length);
        t2.run(new TrainListener() {
            @Override
            public void onValidation(ValidationInfo info) {
                seen.add(info);
            }
        });
        assertThat(seen).extracting(TrainListener.ValidationInfo::step).containsExactly(1L, 2L);
    }

    @Test
    void endToEndOnMobyDickParagraphsValidationBitsPerByteFall() {
        Path text = dev.lathe.Fixtures.fixture("text/moby-16k.txt");
        TextCorpus corpus = TextCorpus.of(List.of(text), true);
        TokenData data = TokenData.cached(dir.resolve("moby.tokens"), corpus, TextEncoder.bytes(3), 1, 2, 0.1, 3);
        assertThat(data.validationDocs()).isPositive();
        assertThat(data.trainDocs()).isGreaterThan(data.validationDocs());
        assertThat(data.trainBytes() + data.validationBytes()).isLessThanOrEqualTo(15_544);
        TrainConfig cfg = base().seqLen(64).batchSize(4).steps(30).lr(1e-2).evalEvery(30).build();
        Trainer t = new Trainer(TrainModel.init(TINY, 4, true), cfg, new CrossEntropyLoss(), data.train(), data.validation(),
                data.validationBytes());
        TrainListener.ValidationInfo before = t.validate();
        List<TrainListener.ValidationInfo> after = new ArrayList<>();
        t.run(new TrainListener() {
            @Override
            public void onValidation(ValidationInfo info) {
                after.add(info);
            }
        });
        assertThat(after).hasSize(1);
        // random init: about log2(259) = 8 bits per byte; a few dozen steps learn English byte statistics
        assertThat(before.bitsPerByte()).isBetween(7.5, 8.5);
        assertThat(after.get(0).bitsPerByte()).isLessThan(before.bitsPerByte() - 2.5);
    }
}
