# SMTP - the server's greeting: 220, a host name, then "ESMTP" or "SMTP" or "mail"
smtp
^220[\x09-\x0d -~]* (e?smtp|simple mail|mail)
