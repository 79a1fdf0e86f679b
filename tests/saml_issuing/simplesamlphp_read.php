<?php
/*
 * Reads a samlp:Response as a SimpleSAMLphp 1.19 SP does, with its own SAML2 library and
 * xmlseclibs: the response and assertion signatures are checked against the IdP certificate,
 * an EncryptedAssertion is decrypted with the SP key loaded as modules/saml/lib/Message.php
 * loads it (XMLSecurityKey::RSA_1_5, RSA-1_5 itself blacklisted). Prints JSON; exit 1 on refusal.
 *
 * php simplesamlphp_read.php RESPONSE.xml IDP-CERT.pem [SP-KEY.pem]
 */
require '/usr/share/simplesamlphp/vendor/autoload.php';

use RobRichards\XMLSecLibs\XMLSecurityKey;

function refuse(string $why): void {
    echo json_encode(['error' => $why]), "\n";
    exit(1);
}

try {
    $document = \SAML2\DOMDocumentFactory::fromFile($argv[1]);
    $idpKey = new XMLSecurityKey(XMLSecurityKey::RSA_SHA256, ['type' => 'public']);
    $idpKey->loadKey(file_get_contents($argv[2]), false, true);
    $response = new \SAML2\Response($document->documentElement);
    $out = ['response_signed' => $response->validate($idpKey), 'status' => $response->getStatus(), 'assertions' => []];
    foreach ($response->getAssertions() as $assertion) {
        if ($assertion instanceof \SAML2\EncryptedAssertion) {
            if (!isset($argv[3])) {
                refuse('encrypted assertion and no SP key');
            }
            $spKey = new XMLSecurityKey(XMLSecurityKey::RSA_1_5, ['type' => 'private']);
            $spKey->loadKey(file_get_contents($argv[3]));
            $assertion = $assertion->getAssertion($spKey, [XMLSecurityKey::RSA_1_5]);
        }
        $nameId = $assertion->getNameId();
        $out['assertions'][] = [
            'signed' => $assertion->validate($idpKey),
            'issuer' => $assertion->getIssuer()->getValue(),
            'name_id' => $nameId === null ? null : $nameId->getValue(),
            'name_id_format' => $nameId === null ? null : $nameId->getFormat(),
            'session_index' => $assertion->getSessionIndex(),
            'audiences' => $assertion->getValidAudiences(),
            'authn_context_class_ref' => $assertion->getAuthnContextClassRef(),
            'attributes' => $assertion->getAttributes(),
        ];
    }
    echo json_encode($out), "\n";
} catch (\Throwable $e) {
    refuse(get_class($e) . ': ' . $e->getMessage());
}
