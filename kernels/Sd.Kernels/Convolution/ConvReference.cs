namespace Sd.Kernels.Convolution;

/// <summary>
/// Direct convolution, the test oracle: NHWC input/output, PyTorch weight layout [Cout, Cin, kh, kw],
/// optional bias [Cout] and residual (NHWC, same shape as the output), float accumulation.
/// </summary>
public static unsafe class ConvReference
{
    public static void Conv2d(in ConvShape s, float* input, float* weights, float* bias, float* residual, float* output)
    {
        int oh = s.OutHeight, ow = s.OutWidth;
        for (int n = 0; n < s.Batch; n++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            nint outIndex = (((nint)n * oh + oy) * ow + ox) * s.OutChannels;
            for (int co = 0; co < s.OutChannels; co++)
            {
                float sum = bias == null ? 0 : bias[co];
                for (int ky = 0; ky < s.KernelH; ky++)
                {
                    int y = oy * s.StrideH - s.PadTop + ky;
                    if (y < 0 || y >= s.Height) continue;
                    for (int kx = 0; kx < s.KernelW; kx++)
                    {
                        int x = ox * s.StrideW - s.PadLeft + kx;
                        if (x < 0 || x >= s.Width) continue;
                        float* pixel = input + (((nint)n * s.Height + y) * s.Width + x) * s.PixelStride;
                        for (int ci = 0; ci < s.InChannels; ci++)
                        {
                            sum += pixel[ci] * weights[(((nint)co * s.InChannels + ci) * s.KernelH + ky) * s.KernelW + kx];
                        }
                    }
                }
                output[outIndex + co] = sum + (residual == null ? 0 : residual[outIndex + co]);
            }
        }
    }
}
