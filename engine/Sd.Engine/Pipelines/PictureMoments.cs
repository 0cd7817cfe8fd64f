using Sd.Engine.Tensors;

namespace Sd.Engine.Pipelines;

/// <summary>The pictures a request may VAE-encode: the init image, and the masked picture of 9-channel inpainting.</summary>
internal enum PictureKind
{
    Init,
    Masked,
}

/// <summary>
/// The VAE posterior moments (mean, log-variance) of a request's pictures, encoded by the first image that needs
/// them: every image of a batch draws its own posterior sample from the same moments, so the encoder runs once.
/// </summary>
internal sealed class PictureMoments : IDisposable
{
    private readonly Dictionary<PictureKind, (Tensor Mean, Tensor LogVar)> _encoded = [];

    public (Tensor Mean, Tensor LogVar) GetOrEncode(PictureKind kind, Func<(Tensor Mean, Tensor LogVar)> encode)
    {
        if (!_encoded.TryGetValue(kind, out (Tensor Mean, Tensor LogVar) moments))
        {
            moments = encode();
            _encoded.Add(kind, moments);
        }
        return moments;
    }

    public void Dispose()
    {
        foreach ((Tensor mean, Tensor logVar) in _encoded.Values)
        {
            mean.Dispose();
            logVar.Dispose();
        }
        _encoded.Clear();
    }
}
