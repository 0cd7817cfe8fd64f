using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sd.Kernels.Convolution;

/// <summary>
/// The F(4x4, 3x3) input transform V = B^T d B (6x6 input tile -> 36 values) and output transform Y = A^T M A
/// (36 values -> 4x4 output tile), applied to 8 channels at a time (channels are contiguous in NHWC) with a scalar
/// tail for channel counts that are not multiples of 8. Rows first, then columns, each a 1-D 6-point transform.
/// </summary>
public static unsafe class WinogradTransforms
{
    private const int Lanes = 8;

    /// <summary>
    /// Input tile at (y0, x0) (may stick out of the image: zero padding) of image <paramref name="image"/>
    /// [H, W, C] -> v[p * ldv + c] for the 36 positions p.
    /// </summary>
    public static void InputTile(float* image, int height, int width, int channels, int y0, int x0, float* v, nint ldv)
    {
        int c = 0;
        Vector256<float>* d = stackalloc Vector256<float>[36];
        for (; c <= channels - Lanes; c += Lanes)
        {
            for (int i = 0; i < 6; i++)
            {
                int y = y0 + i;
                for (int j = 0; j < 6; j++)
                {
                    int x = x0 + j;
                    d[i * 6 + j] = (uint)y < (uint)height && (uint)x < (uint)width
                        ? Vector256.Load(image + ((nint)y * width + x) * channels + c)
                        : Vector256<float>.Zero;
                }
            }
            for (int j = 0; j < 6; j++)
            {
                InputTransform1D(d + j, 6); // columns: d[., j]
            }
            for (int i = 0; i < 6; i++)
            {
                InputTransform1D(d + i * 6, 1); // rows: d[i, .]
            }
            for (int p = 0; p < 36; p++)
            {
                d[p].Store(v + p * ldv + c);
            }
        }
        for (; c < channels; c++)
        {
            InputTileScalar(image, height, width, channels, y0, x0, c, v, ldv);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputTransform1D(Vector256<float>* d, int stride)
    {
        Vector256<float> d0 = d[0], d1 = d[stride], d2 = d[2 * stride], d3 = d[3 * stride], d4 = d[4 * stride], d5 = d[5 * stride];
        Vector256<float> four = Vector256.Create(4f), five = Vector256.Create(5f), two = Vector256.Create(2f);
        Vector256<float> t0 = d4 - Vector256.Create(4f) * d2; // d4 - 4 d2
        Vector256<float> t1 = d3 - four * d1;                 // d3 - 4 d1
        Vector256<float> t2 = d4 - d2;
        Vector256<float> t3 = two * (d3 - d1);
        d[0] = Vector256.FusedMultiplyAdd(four, d0, d4 - five * d2);
        d[stride] = t0 + t1;
        d[2 * stride] = t0 - t1;
        d[3 * stride] = t2 + t3;
        d[4 * stride] = t2 - t3;
        d[5 * stride] = Vector256.FusedMultiplyAdd(four, d1, d5 - five * d3);
    }

    private static void InputTileScalar(float* image, int height, int width, int channels, int y0, int x0, int c, float* v, nint ldv)
    {
        float* d = stackalloc float[36];
        for (int i = 0; i < 6; i++)
        {
            for (int j = 0; j < 6; j++)
            {
                int y = y0 + i, x = x0 + j;
                d[i * 6 + j] = (uint)y < (uint)height && (uint)x < (uint)width ? image[((nint)y * width + x) * channels + c] : 0;
            }
        }
        for (int j = 0; j < 6; j++) InputTransform1DScalar(d + j, 6);
        for (int i = 0; i < 6; i++) InputTransform1DScalar(d + i * 6, 1);
        for (int p = 0; p < 36; p++) v[p * ldv + c] = d[p];
    }

    private static void InputTransform1DScalar(float* d, int stride)
    {
        float d0 = d[0], d1 = d[stride], d2 = d[2 * stride], d3 = d[3 * stride], d4 = d[4 * stride], d5 = d[5 * stride];
        float t0 = d4 - 4 * d2, t1 = d3 - 4 * d1, t2 = d4 - d2, t3 = 2 * (d3 - d1);
        d[0] = 4 * d0 - 5 * d2 + d4;
        d[stride] = t0 + t1;
        d[2 * stride] = t0 - t1;
        d[3 * stride] = t2 + t3;
        d[4 * stride] = t2 - t3;
        d[5 * stride] = 4 * d1 - 5 * d3 + d5;
    }

    /// <summary>
    /// m[p * ldm + c] for the 36 positions -> the 4x4 output tile at (y0, x0) of output [H, W, stride ldo] for
    /// channels [0, channels), adding bias[c] and residual (same pixel layout, stride ldr); pixels outside the
    /// image are skipped (edge tiles).
    /// </summary>
    public static void OutputTile(float* m, nint ldm, int channels, float* bias, float* residual, int ldr,
        float* output, int ldo, int height, int width, int y0, int x0)
    {
        int rowsValid = Math.Min(4, height - y0), colsValid = Math.Min(4, width - x0);
        Vector256<float>* t = stackalloc Vector256<float>[36];
        int c = 0;
        for (; c <= channels - Lanes; c += Lanes)
        {
            for (int p = 0; p < 36; p++)
            {
                t[p] = Vector256.Load(m + p * ldm + c);
            }
            for (int j = 0; j < 6; j++)
            {
                OutputTransform1D(t + j, 6); // columns: rows 0..3 of column j
            }
            Vector256<float> b = bias == null ? Vector256<float>.Zero : Vector256.Load(bias + c);
            for (int i = 0; i < rowsValid; i++)
            {
                OutputTransform1D(t + i * 6, 1); // row i: entries 0..3
                for (int j = 0; j < colsValid; j++)
                {
                    nint pixel = (nint)(y0 + i) * width + x0 + j;
                    Vector256<float> value = t[i * 6 + j] + b;
                    if (residual != null)
                    {
                        value += Vector256.Load(residual + pixel * ldr + c);
                    }
                    value.Store(output + pixel * ldo + c);
                }
            }
        }
        for (; c < channels; c++)
        {
            OutputTileScalar(m, ldm, c, bias, residual, ldr, output, ldo, width, y0, x0, rowsValid, colsValid);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OutputTransform1D(Vector256<float>* m, int stride)
    {
        Vector256<float> m0 = m[0], m1 = m[stride], m2 = m[2 * stride], m3 = m[3 * stride], m4 = m[4 * stride], m5 = m[5 * stride];
        Vector256<float> s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
        m[0] = m0 + s12 + s34;
        m[stride] = Vector256.FusedMultiplyAdd(Vector256.Create(2f), d34, d12);
        m[2 * stride] = Vector256.FusedMultiplyAdd(Vector256.Create(4f), s34, s12);
        m[3 * stride] = Vector256.FusedMultiplyAdd(Vector256.Create(8f), d34, d12) + m5;
    }

    private static void OutputTileScalar(float* m, nint ldm, int c, float* bias, float* residual, int ldr,
        float* output, int ldo, int width, int y0, int x0, int rowsValid, int colsValid)
    {
        float* t = stackalloc float[36];
        for (int p = 0; p < 36; p++) t[p] = m[p * ldm + c];
        for (int j = 0; j < 6; j++) OutputTransform1DScalar(t + j, 6);
        for (int i = 0; i < rowsValid; i++)
        {
            OutputTransform1DScalar(t + i * 6, 1);
            for (int j = 0; j < colsValid; j++)
            {
                nint pixel = (nint)(y0 + i) * width + x0 + j;
                float value = t[i * 6 + j] + (bias == null ? 0 : bias[c]);
                if (residual != null) value += residual[pixel * ldr + c];
                output[pixel * ldo + c] = value;
            }
        }
    }

    private static void OutputTransform1DScalar(float* m, int stride)
    {
        float m0 = m[0], m1 = m[stride], m2 = m[2 * stride], m3 = m[3 * stride], m4 = m[4 * stride], m5 = m[5 * stride];
        float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
        m[0] = m0 + s12 + s34;
        m[stride] = d12 + 2 * d34;
        m[2 * stride] = s12 + 4 * s34;
        m[3 * stride] = d12 + 8 * d34 + m5;
    }
}
