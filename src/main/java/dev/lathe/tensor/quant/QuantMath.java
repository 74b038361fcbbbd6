package dev.lathe.tensor.quant;

import dev.lathe.LatheException;
import dev.lathe.tensor.GgmlType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Scalar helpers shared by the block codecs: the rounding primitives and the scale searches of
 * ggml-quants.c (llama.cpp c392e509). ggml-quants.c is compiled into ggml-base without -march flags, so
 * its float arithmetic is plain IEEE single precision evaluated left to right with no fused multiply-add;
 * Java float arithmetic gives the same bits when every expression keeps the C operand order and the
 * C int-to-float promotions, which is what the methods here (and the codecs) do. {@link ScaleSearch} runs
 * the candidate loops of makeQxQuants and makeQkxQuants one candidate per vector lane with the same
 * operations per lane, so it gives the same bits too.
 */
public final class QuantMath {
    private QuantMath() {}

    /**
     * Whether makeQxQuants and makeQkxQuants run their candidate searches on vectors ({@link ScaleSearch}, same
     * bits) rather than the scalar loops: on where vectors of 256 bits or more are native, unless
     * {@code -Dlathe.quant.scalarSearch=true}. Not final so that ScaleSearchBench and ScaleSearchTest can
     * compare the two in one JVM.
     */
    static boolean vectorSearch = ScaleSearch.WORTHWHILE && !Boolean.getBoolean("lathe.quant.scalarSearch");

    /** GROUP_MAX_EPS of ggml-quants.c. */
    static final float GROUP_MAX_EPS = 1e-15f;

    /** ggml's nearest_int: adds 1.5*2^23 and reads the mantissa (round half to even for |f| below 2^22). */
    public static int nearestInt(float f) {
        float v = f + 12582912.f;
        return (Float.floatToRawIntBits(v) & 0x007fffff) - 0x00400000;
    }

    /**
     * A C float-to-integer conversion as GCC emits it on x86 (cvttss2si / cvttps2dq): truncation toward
     * zero, and the "integer indefinite" value Integer.MIN_VALUE for NaN and out-of-range input (Java's
     * cast would saturate instead). Matters only for degenerate blocks (e.g. subnormal scales).
     */
    public static int cvtt(float f) {
        return f >= -2147483648f && f < 2147483648f ? (int) f : Integer.MIN_VALUE;
    }

    /** C roundf: round half away from zero. */
    public static float roundf(float f) {
        double a = Math.floor(Math.abs((double) f) + 0.5);
        return (float) Math.copySign(a, f);
    }

    /** GGML_FP32_TO_FP16 (round to nearest even). */
    public static short fp16(float f) {
        return Float.floatToFloat16(f);
    }

    /** GGML_FP16_TO_FP32. */
    public static float f16(short h) {
        return Float.float16ToFloat(h);
    }

    /** fp32 -> fp16 -> fp32, the value a stored scale has when it is read back. */
    public static float roundTrip16(float f) {
        return Float.float16ToFloat(Float.floatToFloat16(f));
    }

    static float sqrtf(float f) {
        return (float) Math.sqrt(f);
    }

    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

    static float halfAt(MemorySegment s, long off) {
        return Float.float16ToFloat(s.get(I16, off));
    }

    static void putHalf(MemorySegment s, long off, float f) {
        s.set(I16, off, Float.floatToFloat16(f));
    }

    static int u8(MemorySegment s, long off) {
        return s.get(ValueLayout.JAVA_BYTE, off) & 0xff;
    }

    static int s8(MemorySegment s, long off) {
        return s.get(ValueLayout.JAVA_BYTE, off);
    }

    static void put8(MemorySegment s, long off, int v) {
        s.set(ValueLayout.JAVA_BYTE, off, (byte) v);
    }

    /**
     * Argument checks shared by every quantize: n a multiple of the block size, arrays long enough, all
     * inputs finite. llama.cpp does not check its input; a NaN or Inf weight yields blocks that
     * llama-quantize's ggml_validate_row_data then rejects ("quantized data validation failed"), so the
     * file is never written. Lathe refuses such input up front instead.
     */
    static void checkQuantizeArgs(GgmlType t, float[] src, int srcOff, int n, float[] importance, MemorySegment dst, long off) {
        if (n < 0 || n % t.blockSize != 0) {
            throw new IllegalArgumentException(t + ": " + n + " values is not a multiple of block size " + t.blockSize);
        }
        if (srcOff < 0 || srcOff + (long) n > src.length) {
            throw new IllegalArgumentException(t + ": source range " + srcOff + "+" + n + " outside array of " + src.length);
        }
        if (importance != null && importance.length < n) {
            throw new IllegalArgumentException(t + ": importance has " + importance.length + " values, need " + n);
        }
        if (off < 0 || off + t.bytesFor(n) > dst.byteSize()) {
            throw new IndexOutOfBoundsException(t + ": destination too small for " + n + " values at offset " + off);
        }
        for (int i = 0; i < n; i++) {
            float v = src[srcOff + i];
            if (!Float.isFinite(v)) {
                throw new LatheException("cannot quantize to " + t + ": value " + v + " at index " + i + " is not finite");
            }
        }
        if (importance != null) {
            for (int i = 0; i < n; i++) {
                float v = importance[i];
                if (!Float.isFinite(v) || v < 0) {
                    throw new LatheException("cannot quantize to " + t + ": importance " + v + " at index " + i + " is not a finite non-negative number");
                }
            }
        }
    }

    static void checkBlocks(GgmlType t, int n) {
        if (n < 0 || n % t.blockSize != 0) {
            throw new IllegalArgumentException(t + ": " + n + " values is not a multiple of block size " + t.blockSize);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Scale searches (ggml-quants.c). Arrays carry an offset so rows need not be copied.
    // ---------------------------------------------------------------------------------------------

    /**
     * make_qx_quants: symmetric quantization of x[xo..xo+n) to L in [0, 2*nmax) (stored as int8), with an
     * optional weighted search over 18 alternative scales. qw may be null (then the rmse_type weights).
     */
    static float makeQxQuants(int n, int nmax, float[] x, int xo, byte[] L, int lo, int rmseType, float[] qw, int qo) {
        return vectorSearch && rmseType > 0
                ? ScaleSearch.makeQxQuants(n, nmax, x, xo, L, lo, rmseType, qw, qo)
                : makeQxQuantsScalar(n, nmax, x, xo, L, lo, rmseType, qw, qo);
    }

    /** The scalar make_qx_quants, a line-by-line port of ggml's; the oracle of {@link ScaleSearch#makeQxQuants}. */
    static float makeQxQuantsScalar(int n, int nmax, float[] x, int xo, byte[] L, int lo, int rmseType, float[] qw, int qo) {
        float max = 0;
        float amax = 0;
        for (int i = 0; i < n; ++i) {
            float ax = Math.abs(x[xo + i]);
            if (ax > amax) { amax = ax; max = x[xo + i]; }
        }
        if (amax < GROUP_MAX_EPS) {
            for (int i = 0; i < n; ++i) L[lo + i] = 0;
            return 0.f;
        }
        float iscale = (float) -nmax / max;
        if (rmseType == 0) {
            for (int i = 0; i < n; ++i) {
                int l = nearestInt(iscale * x[xo + i]);
                L[lo + i] = (byte) (nmax + Math.max(-nmax, Math.min(nmax - 1, l)));
            }
            return 1 / iscale;
        }
        boolean returnEarly = false;
        if (rmseType < 0) {
            rmseType = -rmseType;
            returnEarly = true;
        }
        float sumlx = 0;
        float suml2 = 0;
        for (int i = 0; i < n; ++i) {
            float xi = x[xo + i];
            int l = nearestInt(iscale * xi);
            l = Math.max(-nmax, Math.min(nmax - 1, l));
            L[lo + i] = (byte) (l + nmax);
            float w = qxWeight(qw, qo + i, xi, rmseType);
            sumlx += w * xi * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
        if (returnEarly) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
        float best = scale * sumlx;
        for (int is = -9; is <= 9; ++is) {
            if (is == 0) continue;
            iscale = -(nmax + 0.1f * is) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; ++i) {
                float xi = x[xo + i];
                int l = nearestInt(iscale * xi);
                l = Math.max(-nmax, Math.min(nmax - 1, l));
                float w = qxWeight(qw, qo + i, xi, rmseType);
                sumlx += w * xi * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2) {
                for (int i = 0; i < n; ++i) {
                    int l = nearestInt(iscale * x[xo + i]);
                    L[lo + i] = (byte) (nmax + Math.max(-nmax, Math.min(nmax - 1, l)));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    static float qxWeight(float[] qw, int i, float x, int rmseType) {
        if (qw != null) return qw[i];
        return switch (rmseType) {
            case 1 -> x * x;
            case 2 -> 1;
            case 3 -> Math.abs(x);
            default -> sqrtf(Math.abs(x));
        };
    }

    /** make_q3_quants: as make_qx_quants for Q3_K's reference path, with an iterative per-value refinement. */
    static float makeQ3Quants(int n, int nmax, float[] x, int xo, byte[] L, int lo, boolean doRmse) {
        float max = 0;
        float amax = 0;
        for (int i = 0; i < n; ++i) {
            float ax = Math.abs(x[xo + i]);
            if (ax > amax) { amax = ax; max = x[xo + i]; }
        }
        if (amax < GROUP_MAX_EPS) {
            for (int i = 0; i < n; ++i) L[lo + i] = 0;
            return 0.f;
        }
        float iscale = (float) -nmax / max;
        if (doRmse) {
            float sumlx = 0;
            float suml2 = 0;
            for (int i = 0; i < n; ++i) {
                float xi = x[xo + i];
                int l = nearestInt(iscale * xi);
                l = Math.max(-nmax, Math.min(nmax - 1, l));
                L[lo + i] = (byte) l;
                float w = xi * xi;
                sumlx += w * xi * l;
                suml2 += w * l * l;
            }
            for (int itry = 0; itry < 5; ++itry) {
                int nChanged = 0;
                for (int i = 0; i < n; ++i) {
                    float xi = x[xo + i];
                    float w = xi * xi;
                    int li = L[lo + i];
                    float slx = sumlx - w * xi * li;
                    if (slx > 0) {
                        float sl2 = suml2 - w * li * li;
                        int newL = nearestInt(xi * sl2 / slx);
                        newL = Math.max(-nmax, Math.min(nmax - 1, newL));
                        if (newL != li) {
                            slx += w * xi * newL;
                            sl2 += w * newL * newL;
                            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                                L[lo + i] = (byte) newL;
                                sumlx = slx;
                                suml2 = sl2;
                                ++nChanged;
                            }
                        }
                    }
                }
                if (nChanged == 0) break;
            }
            for (int i = 0; i < n; ++i) L[lo + i] += (byte) nmax;
            return sumlx / suml2;
        }
        for (int i = 0; i < n; ++i) {
            int l = nearestInt(iscale * x[xo + i]);
            l = Math.max(-nmax, Math.min(nmax - 1, l));
            L[lo + i] = (byte) (l + nmax);
        }
        return 1 / iscale;
    }

    /**
     * make_qkx2_quants (qkx3 = false, weights required) and make_qkx3_quants (qkx3 = true, weights may be
     * null meaning x^2): asymmetric quantization to [0, nmax] with a min, searching nstep+1 scales.
     * Returns the scale; the (positive) min is written to theMin[tmo]. L/Laux hold unsigned bytes.
     */
    static float makeQkxQuants(boolean qkx3, int n, int nmax, float[] x, int xo, float[] weights, int wo,
                               byte[] L, int lo, float[] theMin, int tmo, byte[] laux,
                               float rmin, float rdelta, int nstep, boolean useMad) {
        return vectorSearch && nstep >= 1
                ? ScaleSearch.makeQkxQuants(qkx3, n, nmax, x, xo, weights, wo, L, lo, theMin, tmo, rmin, rdelta, nstep, useMad)
                : makeQkxQuantsScalar(qkx3, n, nmax, x, xo, weights, wo, L, lo, theMin, tmo, laux, rmin, rdelta, nstep, useMad);
    }

    /** The scalar make_qkx2/qkx3_quants, a line-by-line port of ggml's; the oracle of {@link ScaleSearch#makeQkxQuants}. */
    static float makeQkxQuantsScalar(boolean qkx3, int n, int nmax, float[] x, int xo, float[] weights, int wo,
                                     byte[] L, int lo, float[] theMin, int tmo, byte[] laux,
                                     float rmin, float rdelta, int nstep, boolean useMad) {
        float min = x[xo];
        float max = x[xo];
        float sumW = weights != null ? weights[wo] : x[xo] * x[xo];
        float sumX = sumW * x[xo];
        for (int i = 1; i < n; ++i) {
            float xi = x[xo + i];
            if (xi < min) min = xi;
            if (xi > max) max = xi;
            float w = weights != null ? weights[wo + i] : xi * xi;
            sumW += w;
            sumX += w * xi;
        }
        if (min > 0) min = 0;
        if (qkx3 ? max <= min : max == min) {
            for (int i = 0; i < n; ++i) L[lo + i] = 0;
            theMin[tmo] = -min;
            return 0.f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestMad = 0;
        for (int i = 0; i < n; ++i) {
            float xi = x[xo + i];
            int l = nearestInt(iscale * (xi - min));
            l = Math.max(0, Math.min(nmax, l));
            L[lo + i] = (byte) l;
            float diff = scale * l + min - xi;
            diff = useMad ? Math.abs(diff) : diff * diff;
            float w = weights != null ? weights[wo + i] : xi * xi;
            bestMad += w * diff;
        }
        if (nstep < 1) {
            theMin[tmo] = -min;
            return scale;
        }
        for (int is = 0; is <= nstep; ++is) {
            iscale = (rmin + rdelta * is + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXl = 0;
            for (int i = 0; i < n; ++i) {
                float xi = x[xo + i];
                int l = nearestInt(iscale * (xi - min));
                l = Math.max(0, Math.min(nmax, l));
                laux[i] = (byte) l;
                float w = weights != null ? weights[wo + i] : xi * xi;
                sumL += w * l;
                sumL2 += w * l * l;
                sumXl += w * l * xi;
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0) {
                float thisScale = (sumW * sumXl - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXl) / D;
                if (thisMin > 0) {
                    thisMin = 0;
                    thisScale = sumXl / sumL2;
                }
                float mad = 0;
                for (int i = 0; i < n; ++i) {
                    float diff = thisScale * (laux[i] & 0xff) + thisMin - x[xo + i];
                    diff = useMad ? Math.abs(diff) : diff * diff;
                    float w = weights != null ? weights[wo + i] : x[xo + i] * x[xo + i];
                    mad += w * diff;
                }
                if (mad < bestMad) {
                    System.arraycopy(laux, 0, L, lo, n);
                    bestMad = mad;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin[tmo] = -min;
        return scale;
    }

    /** make_qp_quants: positive values (sub-block scales or mins) to [0, nmax] with weights. L holds unsigned bytes. */
    static float makeQpQuants(int n, int nmax, float[] x, byte[] L, float[] qw) {
        float max = 0;
        for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
        if (max == 0) {
            for (int i = 0; i < n; ++i) L[i] = 0;
            return 0.f;
        }
        float iscale = nmax / max;
        for (int i = 0; i < n; ++i) L[i] = (byte) nearestInt(iscale * x[i]);
        float scale = 1 / iscale;
        float bestMse = 0;
        for (int i = 0; i < n; ++i) {
            float diff = x[i] - scale * (L[i] & 0xff);
            float w = qw[i];
            bestMse += w * diff * diff;
        }
        for (int is = -4; is <= 4; ++is) {
            if (is == 0) continue;
            float iscaleIs = (0.1f * is + nmax) / max;
            float scaleIs = 1 / iscaleIs;
            float mse = 0;
            for (int i = 0; i < n; ++i) {
                int l = nearestInt(iscaleIs * x[i]);
                l = Math.min(nmax, l);
                float diff = x[i] - scaleIs * l;
                float w = qw[i];
                mse += w * diff * diff;
            }
            if (mse < bestMse) {
                bestMse = mse;
                iscale = iscaleIs;
            }
        }
        float sumlx = 0;
        float suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearestInt(iscale * x[i]);
            l = Math.min(nmax, l);
            L[i] = (byte) l;
            float w = qw[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; ++itry) {
            int nChanged = 0;
            for (int i = 0; i < n; ++i) {
                float w = qw[i];
                int li = L[i] & 0xff;
                float slx = sumlx - w * x[i] * li;
                float sl2 = suml2 - w * li * li;
                if (slx > 0 && sl2 > 0) {
                    int newL = nearestInt(x[i] * sl2 / slx);
                    newL = Math.min(nmax, newL);
                    if (newL != li) {
                        slx += w * x[i] * newL;
                        sl2 += w * newL * newL;
                        if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = (byte) newL;
                            sumlx = slx;
                            suml2 = sl2;
                            ++nChanged;
                        }
                    }
                }
            }
            if (nChanged == 0) break;
        }
        return sumlx / suml2;
    }

    /** get_scale_min_k4: the 6-bit scale (index 0) and min (index 1) of sub-block j of a Q4_K/Q5_K block. */
    static int scaleK4(int j, MemorySegment s, long scalesOff) {
        if (j < 4) return u8(s, scalesOff + j) & 63;
        return (u8(s, scalesOff + j + 4) & 0xF) | ((u8(s, scalesOff + j - 4) >> 6) << 4);
    }

    static int minK4(int j, MemorySegment s, long scalesOff) {
        if (j < 4) return u8(s, scalesOff + j + 4) & 63;
        return (u8(s, scalesOff + j + 4) >> 4) | ((u8(s, scalesOff + j) >> 6) << 4);
    }

    static int scaleK4(int j, byte[] q) {
        if (j < 4) return q[j] & 63;
        return (q[j + 4] & 0xF) | (((q[j - 4] & 0xff) >> 6) << 4);
    }

    static int minK4(int j, byte[] q) {
        if (j < 4) return q[j + 4] & 63;
        return ((q[j + 4] & 0xff) >> 4) | (((q[j] & 0xff) >> 6) << 4);
    }

    /** Packs 8 six-bit scales and mins into the 12-byte layout of Q4_K/Q5_K. */
    static void packScalesK4(byte[] out, int[] ls, int[] lm) {
        java.util.Arrays.fill(out, (byte) 0);
        for (int j = 0; j < 8; ++j) {
            int s = ls[j] & 0xff, m = lm[j] & 0xff;
            if (j < 4) {
                out[j] = (byte) s;
                out[j + 4] = (byte) m;
            } else {
                out[j + 4] = (byte) ((s & 0xF) | ((m & 0xF) << 4));
                out[j - 4] |= (byte) ((s >> 4) << 6);
                out[j] |= (byte) ((m >> 4) << 6);
            }
        }
    }
}
