namespace Sd.Engine.Upscaling;

/// <summary>An upscaler's generator on one NHWC float picture (batch 1), with activation buffers planned per size.</summary>
internal unsafe interface IUpscaleNetwork : IDisposable
{
    /// <summary>y [H x scale, W x scale, out] = the network on x [H, W, in], scale being the config's NetworkScale.</summary>
    void Forward(float* x, int height, int width, float* y);

    /// <summary>Frees the activation buffers; the next call plans them again.</summary>
    void ReleaseBuffers();
}
